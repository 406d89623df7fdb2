"""Openings for a model from its training data (``world/core/openings.py`` says what they are).

``chunkworld openings --model DIR --data DATA`` keeps up to ``--count`` openings in ``DIR``: the
first ``history_chunks`` chunks of clips whose scene stays one caption over them (no event
prompt inside), one clip per distinct caption first, then more clips of the captions seen, in
dataset order. The recipe (``chunkworld train``) runs it on its own data after the prior.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from world.core.checkpoint import read_config
from world.core.openings import Openings, save_openings
from world.train.data import Dataset

COUNT = 512  # openings kept: about 0.8 MB of PNG for the arcade at 8 frames each


def openings_from_dataset(ds: Dataset, frames: int, count: int = COUNT) -> Openings:
    """Up to ``count`` openings of ``frames`` frames each from ``ds`` (see the module docstring).

    Raises:
        ValueError: no clip of ``ds`` has ``frames`` frames under one caption.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    chunk = ds.meta.chunk_frames
    chunks = -(-frames // chunk)
    first: list[tuple[np.ndarray, str]] = []
    rest: list[tuple[np.ndarray, str]] = []
    seen: set[str] = set()
    for clip in ds:
        caps = clip.captions[:chunks]
        if len(clip) < frames or len(caps) < chunks or len(set(caps)) != 1:
            continue
        pick = (clip.frames[:frames], caps[0])
        if caps[0] in seen:
            rest.append(pick)
        else:
            seen.add(caps[0])
            first.append(pick)
        if len(first) >= count:
            break
    kept = (first + rest)[:count]
    if not kept:
        raise ValueError(
            f"no clip of {ds.path} has {frames} frames under one caption; record clips of at "
            f"least {frames} frames whose first {chunks} chunks share a caption"
        )
    return Openings(np.stack([f for f, _ in kept]), tuple(c for _, c in kept))


def write_openings(model_dir: str | Path, data: str | Path, count: int = COUNT) -> Openings:
    """Keep openings from dataset ``data`` in ``model_dir``, sized to the model's history."""
    cfg, _ = read_config(model_dir)
    ds = Dataset(data)
    size = (cfg.codec.frame_size, cfg.codec.width)
    if ds.meta.frame_size != size or ds.meta.chunk_frames != cfg.chunk_frames:
        raise ValueError(
            f"{data} has frames of {ds.meta.frame_size} (H, W) in chunks of "
            f"{ds.meta.chunk_frames}; the model in {model_dir} needs {size} and {cfg.chunk_frames}"
        )
    openings = openings_from_dataset(ds, cfg.history_chunks * cfg.chunk_frames, count)
    save_openings(model_dir, openings)
    return openings


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="chunkworld openings",
        description="keep openings (true first frames with their captions) in a model directory, "
        "so that its text starts begin from the closest one",
    )
    p.add_argument("--model", required=True, help="the model directory")
    p.add_argument("--data", required=True, help="a dataset of the model's game")
    p.add_argument(
        "--count", type=int, default=COUNT, help="openings to keep (default %(default)s)"
    )
    a = p.parse_args(argv)
    try:
        o = write_openings(a.model, a.data, a.count)
    except ValueError as e:
        raise SystemExit(f"chunkworld openings: error: {e}") from None
    n, t = o.frames.shape[:2]
    print(f"{n} openings of {t} frames, {len(set(o.captions))} captions, in {a.model}")


if __name__ == "__main__":
    main()
