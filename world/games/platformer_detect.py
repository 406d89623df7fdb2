"""The platformer's colours and sprites, and its pixel detectors (numpy; frames only).

Every colour is flat and unique to its role, and every pair of colours that can touch is at
least 100 apart (RGB Euclidean), so a pixel's role is its nearest known colour within
``MAX_DIST`` even on a model's slightly blurred frame. :func:`find_player` gives the player's
centre; :func:`count_objects` counts coins, keys and closed doors as connected blobs of their
colour that hold at least half a sprite's pixels (a blob of ``n`` sprites' worth counts ``n``),
so a sprite cut by the screen's edge counts when at least half of it is in view, the same rule
as ``Platformer.visible()``. The key icon in the screen's top-left tile is ``held_keys``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["COLOURS", "LABELS", "MAX_DIST", "classify", "count_objects", "find_player", "sprites"]

COLOURS: dict[str, tuple[int, int, int]] = {
    "sky_day": (140, 190, 250),
    "sky_night": (20, 24, 60),
    "rain": (70, 100, 210),
    "brick_light": (170, 110, 60),
    "brick_dark": (115, 70, 35),
    "player": (230, 30, 30),
    "coin": (255, 210, 0),
    "key": (0, 220, 200),
    "door": (160, 40, 220),
}
LABELS: tuple[str, ...] = tuple(COLOURS)
_RGB = np.array(list(COLOURS.values()), dtype=np.float32)
MAX_DIST = 90.0  # a pixel farther than this from every known colour has no role

# Sprites on the 8x8 design grid of a tile (resampled to T pixels a tile at pixel centres).
_COIN = np.zeros((8, 8), dtype=bool)
_COIN[1:7, 1:7] = True
_COIN[[1, 1, 6, 6], [1, 6, 1, 6]] = False  # rounded corners
_KEY = np.zeros((8, 8), dtype=bool)
_KEY[2, 1:4] = True  # the bow ...
_KEY[3:5, 1:7] = True  # ... the shaft ...
_KEY[5, [1, 2, 3, 5, 6]] = True  # ... and the teeth
_RAIN = np.zeros((16, 16), dtype=bool)
for _y, _x in ((0, 2), (3, 10), (6, 5), (9, 13), (12, 1), (13, 8)):
    for _k in range(5):  # a streak slanting down-left, along its motion
        _RAIN[(_y + _k) % 16, (_x - _k // 2) % 16] = True


def _resample(design: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Nearest-neighbour resampling at pixel centres (so a sprite stays inside its box)."""
    ri = ((2 * np.arange(rows) + 1) * design.shape[0]) // (2 * rows)
    ci = ((2 * np.arange(cols) + 1) * design.shape[1]) // (2 * cols)
    return design[np.ix_(ri, ci)]


def sprites(T: int) -> dict[str, np.ndarray]:
    """Boolean masks at ``T`` pixels a tile: tile (T, T), coin, key (T, T), door (2T, T)."""
    return {
        "tile": np.ones((T, T), dtype=bool),
        "coin": _resample(_COIN, T, T),
        "key": _resample(_KEY, T, T),
        "door": np.ones((2 * T, T), dtype=bool),
    }


_RAIN_CACHE: dict[tuple[int, int], np.ndarray] = {}


def rain_mask(size: int, t: int) -> np.ndarray:
    """Where rain streaks are at tick ``t`` (they fall 2 units and drift 1 left a tick)."""
    key = (size, t % 16)
    if key not in _RAIN_CACHE:
        u = ((2 * np.arange(size) + 1) * 64) // (2 * size)  # the design unit of each pixel
        rows, cols = (u - 2 * t) % 16, (u + t) % 16
        _RAIN_CACHE[key] = _RAIN[np.ix_(rows, cols)]
    return _RAIN_CACHE[key]


def _check(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 16:
        raise ValueError(f"frame must be (H, W, 3) with H >= 16, got shape {frame.shape}")
    return frame


def classify(frame: np.ndarray, max_dist: float = MAX_DIST) -> np.ndarray:
    """Index into ``LABELS`` of each pixel's nearest colour, int (H, W); -1 beyond ``max_dist``."""
    f = _check(frame).astype(np.float32)
    d = ((f[:, :, None, :] - _RGB) ** 2).sum(-1)  # (H, W, labels)
    lab = d.argmin(-1)
    lab[d.min(-1) > max_dist * max_dist] = -1
    return lab


def find_player(frame: np.ndarray, max_dist: float = MAX_DIST) -> tuple[float, float] | None:
    """The centre ``(x, y)`` in pixels of the player-coloured pixels; None when fewer than 30%
    of the player's area are found. Pixels farther than one player height from the median are
    dropped, so stray reddish pixels of a generated frame do not pull the centre."""
    lab = classify(frame, max_dist)
    ys, xs = np.nonzero(lab == LABELS.index("player"))
    T = frame.shape[0] // 8
    w, h = (6 * T) // 8, T  # the player's box in pixels
    if len(xs) < max(2, int(0.3 * w * h)):
        return None
    mx, my = np.median(xs), np.median(ys)
    keep = (np.abs(xs - mx) <= h) & (np.abs(ys - my) <= h)
    if keep.sum() < max(2, int(0.3 * w * h)):
        return None
    return float(xs[keep].mean() + 0.5), float(ys[keep].mean() + 0.5)


def _blob_sizes(mask: np.ndarray) -> np.ndarray:
    """Pixel counts of the 4-connected blobs of ``mask`` (label propagation, numpy only)."""
    h, w = mask.shape
    none = h * w
    lab = np.where(mask, np.arange(none).reshape(h, w), none)
    while True:
        new = lab.copy()
        np.minimum(new[1:], lab[:-1], out=new[1:])
        np.minimum(new[:-1], lab[1:], out=new[:-1])
        np.minimum(new[:, 1:], lab[:, :-1], out=new[:, 1:])
        np.minimum(new[:, :-1], lab[:, 1:], out=new[:, :-1])
        new[~mask] = none
        if np.array_equal(new, lab):
            break
        lab = new
    return np.unique(lab[mask], return_counts=True)[1]


def _count(mask: np.ndarray, area: int) -> int:
    sizes = _blob_sizes(mask)
    sizes = sizes[2 * sizes >= area]
    return int(np.maximum(1, np.floor(sizes / area + 0.5)).sum())


def count_objects(frame: np.ndarray, max_dist: float = MAX_DIST) -> dict[str, int]:
    """``{"coins", "keys", "doors", "held_keys"}`` found in a frame (doors: closed ones)."""
    frame = _check(frame)
    T = frame.shape[0] // 8
    lab = classify(frame, max_dist)
    masks = sprites(T)
    key = lab == LABELS.index("key")
    held = int(2 * key[:T, :T].sum() >= masks["key"].sum())
    key[:T, :T] = False  # the icon's tile: no key of the level is ever drawn there
    return {
        "coins": _count(lab == LABELS.index("coin"), int(masks["coin"].sum())),
        "keys": _count(key, int(masks["key"].sum())),
        "doors": _count(lab == LABELS.index("door"), int(masks["door"].sum())),
        "held_keys": held,
    }
