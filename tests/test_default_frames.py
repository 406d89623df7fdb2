"""The shipped default model's frames, pinned: one fixed seed, start video (four frames of the
built-in arcade world, stored in the fixture) and list of actions, played through ``sdk.Session``
exactly as a user calls it, at the model's default play setting in fp32 on one thread, must give
the bytes recorded in tests/fixtures/default_frames.npz (on another CPU, within a rounding:
below). Refactors of world/ may not change what a player sees. Re-record only when the default model or its sampling is meant to change:

    OMP_NUM_THREADS=1 python tests/test_default_frames.py
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from sdk import Session

FIXTURE = Path(__file__).with_name("fixtures") / "default_frames.npz"
SEED = 7
ACTIONS: list[str | list[str]] = ["right", ["left", "left", "fire", "noop"], "up", "fire"]


def play(video: np.ndarray) -> np.ndarray:
    """The chunks of ``reset(video=...)`` and one ``step`` per action, (5, F, H, W, 3) uint8."""
    threads = torch.get_num_threads()
    try:
        with Session.load("default", seed=SEED, threads=1, precision="fp32") as s:
            chunks = [s.reset(video=video).frames]
            chunks += [s.step(a).frames for a in ACTIONS]
    finally:
        torch.set_num_threads(threads)
    return np.stack(chunks)


def digest(frames: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()


# Another CPU's kernels (AVX-512 against AMX, say) may round a few values one level apart: on an
# AMD EPYC 4 of the 245,760 values were 1 level off a recording made on another CPU (2026-12-06).
# Anything more is a change of what a player sees.
MOST_OFF = 1  # levels (of 255)
MOST_SHARE_OFF = 1e-4  # of all values


def test_default_model_frames_match_the_recording():
    rec = np.load(FIXTURE)
    assert digest(rec["frames"]) == str(rec["sha256"])  # the fixture itself is whole
    frames = play(rec["video"])
    assert frames.shape == rec["frames"].shape and frames.dtype == np.uint8
    off = np.abs(frames.astype(np.int16) - rec["frames"].astype(np.int16))
    changed = np.argwhere((off > MOST_OFF).any(axis=(2, 3, 4)))
    assert changed.tolist() == [], "chunk, frame pairs more than a rounding from the recording"
    assert (off > 0).mean() <= MOST_SHARE_OFF, f"{int((off > 0).sum())} values differ"


def record() -> None:
    """Write the fixture from the current code (the start video comes from the built-in game)."""
    from world.games.arcade import Game, GameConfig

    game = Game(GameConfig.for_size(64))
    video = np.stack([game.reset(seed=3)] + [game.step(a) for a in ("right", "right", "fire")])
    frames = play(video.astype(np.uint8))
    np.savez_compressed(FIXTURE, video=video, frames=frames, sha256=np.array(digest(frames)))
    print(FIXTURE, FIXTURE.stat().st_size, "bytes", frames.shape, digest(frames))


if __name__ == "__main__":
    record()
