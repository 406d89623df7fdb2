"""Openings for a model from its game or its training data (``world/core/openings.py`` says
what they are).

Each opening is the first ``history_chunks`` chunks of a clip whose scene stays one caption over
them (no event prompt inside): one clip per distinct caption first, then more clips of the
captions seen. From a dataset (``chunkworld openings --model DIR --data DATA``) up to
``--count`` of them, in dataset order. From a game (``--game NAME``; the recipe, ``chunkworld
train``, does this after the prior when it plays a game) clips are played as its training data
is, until ``patience`` clips in a row bring no caption not seen before: every scene the game
captions gets an opening (up to :data:`MAX_OPENINGS`), and more clips fill up to ``--count``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from world.core.checkpoint import read_config
from world.core.openings import Openings, save_openings
from world.games.protocol import validate_game
from world.train.data import Dataset
from world.train.gamedata import game_clip, sized_game

COUNT = 512  # openings kept: about 0.8 MB of PNG for the arcade at 8 frames each
# from a game: a clip per caption, up to this many (8 frames of 64x64 each: 200 MB decoded)
MAX_OPENINGS = 2048
# playing clips until this many in a row bring no new caption (the arcade showed 1,456 of its
# 1,458 scenes within 48,000 clips), or this many clips in all
PATIENCE = 5000
GAME_CLIPS = 60_000


def choose_openings(
    clips: Iterable[tuple[np.ndarray, Sequence[str]]],
    frames: int,
    chunk: int,
    count: int = COUNT,
    limit: int | None = None,
    patience: int | None = None,
) -> list[tuple[np.ndarray, str]]:
    """From ``clips`` ((frames, caption per chunk), in order), the first ``frames`` frames of
    those whose first chunks share one caption, with that caption: one clip per distinct caption
    (at most ``limit``, default ``count``) first, then more clips of the captions seen, ``count``
    in all or every distinct one if more. Stops reading ``clips`` at ``limit`` distinct captions
    or, with ``patience``, once that many clips in a row brought no new one."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    limit = count if limit is None else limit
    chunks = -(-frames // chunk)
    first: list[tuple[np.ndarray, str]] = []
    rest: list[tuple[np.ndarray, str]] = []
    seen: set[str] = set()
    dry = 0
    for clip_frames, captions in clips:
        if patience is not None and dry >= patience:  # that many clips in a row brought none new
            break
        caps = list(captions[:chunks])
        dry += 1
        held = len(clip_frames) >= frames and len(caps) == chunks and len(set(caps)) == 1
        if not held:  # too short, or an event inside the opening
            continue
        if caps[0] in seen:
            if len(rest) < count:
                rest.append((clip_frames[:frames], caps[0]))
        else:
            seen.add(caps[0])
            first.append((clip_frames[:frames], caps[0]))
            dry = 0
            if len(first) >= limit:
                break
    return (first + rest)[: max(count, len(first))]


def _openings(kept: list[tuple[np.ndarray, str]]) -> Openings:
    return Openings(np.stack([f for f, _ in kept]), tuple(c for _, c in kept))


def openings_from_dataset(ds: Dataset, frames: int, count: int = COUNT) -> Openings:
    """Up to ``count`` openings of ``frames`` frames each from ``ds`` (see the module docstring).

    Raises:
        ValueError: no clip of ``ds`` has ``frames`` frames under one caption.
    """
    kept = choose_openings(
        ((clip.frames, clip.captions) for clip in ds), frames, ds.meta.chunk_frames, count
    )
    if not kept:
        chunks = -(-frames // ds.meta.chunk_frames)
        raise ValueError(
            f"no clip of {ds.path} has {frames} frames under one caption; record clips of at "
            f"least {frames} frames whose first {chunks} chunks share a caption"
        )
    return _openings(kept)


def game_openings(
    game: Any,
    frames: int,
    chunk: int,
    seed: int = 0,
    count: int = COUNT,
    clips: int = GAME_CLIPS,
    patience: int = PATIENCE,
) -> Openings:
    """Openings of ``frames`` frames from ``game`` (a game of :mod:`world.games.protocol`),
    played as its training data is with seed base ``seed`` and no events
    (:func:`world.train.gamedata.game_clip`): an opening for every caption it shows (up to
    :data:`MAX_OPENINGS`), more up to ``count``; at most ``clips`` clips, stopping once
    ``patience`` in a row bring no new caption.

    Raises:
        ValueError: no clip held one caption over ``frames`` frames (the game's scenes change
            caption inside every opening).
    """
    played = (game_clip(game, i, frames, chunk, seed, 0.0) for i in range(clips))
    bar = tqdm(played, total=clips, desc="openings", unit="clip", mininterval=2.0)
    kept = choose_openings(
        ((c["frames"], c["captions"]) for c in bar), frames, chunk, count, MAX_OPENINGS, patience
    )
    bar.close()
    if not kept:
        raise ValueError(f"no clip of {frames} frames kept one caption over its chunks")
    return _openings(kept)


def _shape(model_dir: str | Path) -> tuple[tuple[int, int], int, int]:
    """The model's frame size (H, W), chunk frames and opening frames."""
    cfg, _ = read_config(model_dir)
    size = (cfg.codec.frame_size, cfg.codec.width)
    return size, cfg.chunk_frames, cfg.history_chunks * cfg.chunk_frames


def write_openings(model_dir: str | Path, data: str | Path, count: int = COUNT) -> Openings:
    """Keep openings from dataset ``data`` in ``model_dir``, sized to the model's history."""
    size, chunk, frames = _shape(model_dir)
    ds = Dataset(data)
    if ds.meta.frame_size != size or ds.meta.chunk_frames != chunk:
        raise ValueError(
            f"{data} has frames of {ds.meta.frame_size} (H, W) in chunks of "
            f"{ds.meta.chunk_frames}; the model in {model_dir} needs {size} and {chunk}"
        )
    openings = openings_from_dataset(ds, frames, count)
    save_openings(model_dir, openings)
    return openings


def write_game_openings(
    model_dir: str | Path, game: Any, seed: int = 0, count: int = COUNT, clips: int = GAME_CLIPS
) -> Openings:
    """Keep openings of ``game`` in ``model_dir`` (:func:`game_openings`), sized to the model's
    history."""
    size, chunk, frames = _shape(model_dir)
    openings = game_openings(game, frames, chunk, seed, count, clips)
    got = openings.frames.shape[2:4]
    if got != size:
        raise ValueError(
            f"the game draws {got} (H, W) frames; the model in {model_dir} needs {size}"
        )
    save_openings(model_dir, openings)
    return openings


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="chunkworld openings",
        description="keep openings (true first frames with their captions) in a model directory, "
        "so that its text starts begin from the closest one",
    )
    p.add_argument("--model", required=True, help="the model directory")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="a dataset of the model's game: openings in its order")
    src.add_argument(
        "--game",
        help='the model\'s game ("arcade", "platformer" or package.module:ClassName), played '
        "until every scene it captions has an opening",
    )
    p.add_argument(
        "--count",
        type=int,
        default=COUNT,
        help="openings to keep: from --data at most, from --game at least (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="the game's seed base (default 0)")
    p.add_argument(
        "--clips",
        type=int,
        default=GAME_CLIPS,
        help="with --game: clips to play at most "
        "(default %(default)s; it stops sooner once no new caption comes)",
    )
    a = p.parse_args(argv)
    try:
        if a.game:
            game = sized_game(a.game, _shape(a.model)[0][0])
            validate_game(game)
            o = write_game_openings(a.model, game, a.seed, a.count, a.clips)
        else:
            o = write_openings(a.model, a.data, a.count)
    except ValueError as e:  # GameLoadError and GameError are ValueErrors
        raise SystemExit(f"chunkworld openings: error: {e}") from None
    n, t = o.frames.shape[:2]
    print(f"{n} openings of {t} frames, {len(set(o.captions))} captions, in {a.model}")


if __name__ == "__main__":
    main()
