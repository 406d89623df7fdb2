"""Openings: the true starts of a world that a model keeps, so that a text start holds a world.

A world started from a caption alone is drawn from pure noise in one chunk, and a small model
often draws it without its player (the shipped default: 25% of caption starts showed one). A
model directory may therefore keep *openings*: short clips of its game's first frames, each with
the caption of its scene, taken from the training data. A text start takes the opening whose
caption shares the most words and word pairs with the prompt (rarer ones weigh more; ties go to
the session's seed) and goes on from it as a video start; without openings it is drawn from
noise as before.

On disk, beside ``model.safetensors``: ``openings.png``, one row of ``T`` frames per opening
(height ``N * H``, width ``T * W``), and ``openings.json``, ``{"frames": T, "captions": [...]}``.
A PNG keeps them small (flat colours compress well) and lets anyone look at them or add one.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from world.core.text import words

SHEET_FILE = "openings.png"
INDEX_FILE = "openings.json"


def caption_words(text: str) -> frozenset[str]:
    """The terms a caption is matched by: its words, lower case, a plural ``s`` dropped, and
    each pair of neighbouring words, so that a colour stays bound to what it colours
    (``"red balls, grey walls"`` -> ``{"red", "ball", "grey", "wall", "red ball", "ball grey",
    "grey wall"}``)."""
    ws = [
        w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
        for w in words(text)
    ]
    return frozenset(ws) | {f"{a} {b}" for a, b in zip(ws, ws[1:], strict=False)}


class Openings:
    """``frames``: uint8 (N, T, H, W, 3), or a function that returns them, called at the first
    use of :attr:`frames` (a model's openings on disk are decoded at its first text start, so a
    session that never starts from a caption spends neither the memory nor the time);
    ``captions``: N scene captions ("" for none)."""

    def __init__(
        self, frames: np.ndarray | Callable[[], np.ndarray], captions: Sequence[str]
    ) -> None:
        self.captions = tuple(captions)
        if not self.captions:
            raise ValueError("openings need at least one caption")
        self._decode = frames if callable(frames) else None
        self._frames = None if callable(frames) else self._checked(frames)

    def _checked(self, f: np.ndarray) -> np.ndarray:
        if f.dtype != np.uint8 or f.ndim != 5 or f.shape[-1] != 3 or not len(f):
            raise ValueError(
                f"openings must be uint8 (N >= 1, T, H, W, 3), got {f.dtype} {f.shape}"
            )
        if len(self.captions) != len(f):
            raise ValueError(f"{len(f)} openings but {len(self.captions)} captions")
        return f

    @property
    def frames(self) -> np.ndarray:
        """uint8 (N, T, H, W, 3), decoded at first use where they come from disk."""
        if self._frames is None:
            assert self._decode is not None
            self._frames = self._checked(self._decode())
        return self._frames

    def __len__(self) -> int:
        return len(self.captions)

    @cached_property
    def _terms(self) -> tuple[list[frozenset[str]], Counter[str]]:
        """Each caption's terms, and in how many captions each term occurs."""
        sets = [caption_words(c) for c in self.captions]
        return sets, Counter(w for s in sets for w in s)

    def pick(self, caption: str, seed: int) -> int:
        """The index of the opening that best matches ``caption``.

        Score: the sum over the terms (:func:`caption_words`) it shares with the opening's
        caption of log(1 + N / n), n being how many openings' captions hold the term; the best
        scores tie-break by ``seed``. An empty caption, or one sharing no word with any
        opening, picks by ``seed`` alone.
        """
        sets, df = self._terms
        n = len(sets)
        want = caption_words(caption)
        scores = np.array([sum(math.log1p(n / df[w]) for w in want & s) for s in sets])
        best = np.flatnonzero(scores >= scores.max() - 1e-9)
        return int(best[np.random.default_rng(seed).integers(len(best))])


def save_openings(path: str | Path, openings: Openings) -> None:
    """Write ``openings.png`` and ``openings.json`` into model directory ``path`` (each file
    replaced atomically)."""
    path = Path(path)
    n, t, h, w, _ = openings.frames.shape
    sheet = openings.frames.transpose(0, 2, 1, 3, 4).reshape(n * h, t * w, 3)
    tmp = path / (SHEET_FILE + ".tmp")
    iio.imwrite(tmp, sheet, plugin="pillow", extension=".png")
    os.replace(tmp, path / SHEET_FILE)
    tmp = path / (INDEX_FILE + ".tmp")
    tmp.write_text(json.dumps({"frames": t, "captions": list(openings.captions)}, indent=0) + "\n")
    os.replace(tmp, path / INDEX_FILE)


def load_openings(path: str | Path, frame_size: tuple[int, int]) -> Openings | None:
    """The openings kept in model directory ``path``, or None where it keeps none. Their
    frames are decoded at first use (:attr:`Openings.frames`).

    Raises:
        ValueError: the files are there but do not fit each other or the model's ``frame_size``
            (H, W); the message names the file.
    """
    path = Path(path)
    sheet_file, index_file = path / SHEET_FILE, path / INDEX_FILE
    if not index_file.is_file() and not sheet_file.is_file():
        return None
    try:
        index = json.loads(index_file.read_text())
        t, captions = int(index["frames"]), tuple(str(c) for c in index["captions"])
        props = iio.improps(sheet_file, plugin="pillow")  # the header: no pixels decoded
        shape, dtype = tuple(props.shape), props.dtype
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"cannot read the openings in {path}: {e}") from None
    h, w = frame_size
    n = len(captions)
    if shape != (n * h, t * w, 3) or dtype != np.uint8:
        raise ValueError(
            f"{sheet_file} is {dtype} {shape}; {index_file} and the model's {h}x{w} "
            f"frames need uint8 ({n * h}, {t * w}, 3): {n} openings of {t} frames"
        )

    def decode() -> np.ndarray:
        try:
            sheet = np.asarray(iio.imread(sheet_file, plugin="pillow"))
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read the openings in {path}: {e}") from None
        if sheet.shape != (n * h, t * w, 3):  # the file changed since the model was loaded
            raise ValueError(f"{sheet_file} is {sheet.shape} now, {(n * h, t * w, 3)} at load")
        return np.ascontiguousarray(sheet.reshape(n, h, t, w, 3).transpose(0, 2, 1, 3, 4))

    return Openings(decode, captions)
