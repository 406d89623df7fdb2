"""A model's palette from its training data (``world/core/palette.py`` says what it is for).

``chunkworld palette --model DIR --data DATA`` counts the colours of every ``EVERY``-th frame of
up to ``--clips`` clips of ``DATA``; where at most 64 colours, each on at least ``MIN_SHARE`` of
the pixels, make up all but ``1 - COVER`` of them, it keeps those colours as
``DIR/palette.json``. A game drawn in gradients, textures or photographs has no such palette and
is left without one. The recipe (``chunkworld train``) runs it on its own data beside the
openings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from world.core.checkpoint import read_config
from world.core.palette import MAX_COLOURS, Palette, save_palette
from world.train.data import Dataset

MIN_SHARE = 1e-6  # a colour on fewer of the pixels counted is noise, not the palette's
COVER = 0.999  # the kept colours must make up this much of every pixel counted
CLIPS = 256  # clips counted
EVERY = 4  # of each, every fourth frame counted


def find_palette(frames: list[np.ndarray]) -> Palette | None:
    """The palette of uint8 frames (..., 3) (see the module docstring), or None where they are
    not drawn from one."""
    counts: dict[int, int] = {}
    total = 0
    for f in frames:
        rgb = f.reshape(-1, 3).astype(np.int64)
        keys, n = np.unique((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2], return_counts=True)
        for k, c in zip(keys.tolist(), n.tolist(), strict=True):
            counts[k] = counts.get(k, 0) + c
        total += len(rgb)
    kept = sorted((k for k, c in counts.items() if c >= MIN_SHARE * total), key=counts.__getitem__)
    if not 2 <= len(kept) <= MAX_COLOURS or sum(counts[k] for k in kept) < COVER * total:
        return None
    colours = np.array([[k >> 16, (k >> 8) & 255, k & 255] for k in reversed(kept)], np.uint8)
    return Palette(colours)


def write_palette(model_dir: str | Path, data: str | Path, clips: int = CLIPS) -> Palette | None:
    """Keep the palette of dataset ``data`` in ``model_dir`` (most used colour first); None,
    and nothing written, where its frames are not drawn from a palette."""
    cfg, _ = read_config(model_dir)
    ds = Dataset(data)
    size = (cfg.codec.frame_size, cfg.codec.width)
    if ds.meta.frame_size != size:
        raise ValueError(
            f"{data} has frames of {ds.meta.frame_size} (H, W); the model in {model_dir} "
            f"needs {size}"
        )
    frames = [clip.frames[::EVERY] for _, clip in zip(range(clips), ds, strict=False)]
    if not frames:
        raise ValueError(f"{data} holds no clips")
    palette = find_palette(frames)
    if palette is not None:
        save_palette(model_dir, palette)
    return palette


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="chunkworld palette",
        description="keep the colours a game is drawn in (palette.json) in a model directory, "
        "so its frames are snapped to them",
    )
    p.add_argument("--model", required=True, help="the model directory")
    p.add_argument("--data", required=True, help="a dataset of the model's game")
    p.add_argument("--clips", type=int, default=CLIPS, help="clips counted (default %(default)s)")
    a = p.parse_args(argv)
    if a.clips < 1:
        p.error("--clips must be at least 1")
    try:
        palette = write_palette(a.model, a.data, a.clips)
    except ValueError as e:
        raise SystemExit(f"chunkworld palette: error: {e}") from None
    if palette is None:
        print(f"{a.data}: its frames are not drawn from {MAX_COLOURS} colours or fewer; no palette")
    else:
        print(f"{len(palette.colours)} colours kept in {Path(a.model) / 'palette.json'}")


if __name__ == "__main__":
    main()
