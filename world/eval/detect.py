"""Detectors (numpy only): read the built-in game's facts back from a frame, true or generated.

Every colour of :mod:`world.games.arcade` is flat and unique to its role, so a pixel's role is its nearest
known colour (:func:`classify`). On that: :func:`find_player` (the player's centre, robust to
stray yellowish pixels of a generated frame) and :func:`detect_events` (sky, weather, wall and
ball colours, ball count), which the evaluation uses to score action following and prompts.
"""

from __future__ import annotations

import numpy as np

from world.games.arcade import PALETTE, PLAYER_RGB, PROJECTILE_RGB, SKY_RGB, WEATHER_RGB, GameConfig
from world.games.captions import COLOUR_NAMES

__all__ = [
    "FIRST_PALETTE",
    "LABELS",
    "classify",
    "detect_events",
    "find_player",
    "player_errors",
]

# what classify() tells apart; its results index into this
LABELS: tuple[str, ...] = (
    "sky_day",
    "sky_night",
    "rain",
    "snow",
    "player",
    "projectile",
    *COLOUR_NAMES,
)
_LABEL_RGB = np.array(
    [
        SKY_RGB["day"],
        SKY_RGB["night"],
        WEATHER_RGB["rain"],
        WEATHER_RGB["snow"],
        PLAYER_RGB,
        PROJECTILE_RGB,
        *PALETTE.values(),
    ],
    dtype=np.float32,
)
FIRST_PALETTE = 6  # LABELS[FIRST_PALETTE:] are the palette colours (balls and walls)


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be (H, W, 3), got shape {frame.shape}")
    return frame


def classify(frame: np.ndarray, max_dist: float = 60.0) -> np.ndarray:
    """Nearest known colour of each pixel as an index into ``LABELS`` (int (H, W)); -1 where
    the nearest colour is farther than ``max_dist`` (RGB Euclidean)."""
    f = _check_frame(frame).astype(np.float32)
    d = ((f[:, :, None, :] - _LABEL_RGB) ** 2).sum(-1)
    lab = d.argmin(-1)
    lab[np.take_along_axis(d, lab[..., None], -1)[..., 0] > max_dist * max_dist] = -1
    return lab


def find_player(
    frame: np.ndarray, max_dist: float = 60.0, min_pixels: int | None = None
) -> tuple[float, float] | None:
    """Centre ``(x, y)`` of the player-coloured pixels, in the coordinates of ``GameState``.

    Pixels within ``max_dist`` of the player's yellow count; fewer than ``min_pixels`` (default:
    30% of the player's area at this frame size) means no player. Outliers farther than one
    player side from the median are dropped, so stray yellowish pixels of a generated frame do
    not pull the centre.
    """
    frame = _check_frame(frame)
    d = ((frame.astype(np.float32) - np.asarray(PLAYER_RGB, np.float32)) ** 2).sum(-1)
    ys, xs = np.nonzero(d <= max_dist * max_dist)
    side = GameConfig.for_size(min(max(frame.shape[0], 32), 256)).player_size
    need = max(3, int(0.3 * side * side)) if min_pixels is None else min_pixels
    if len(xs) < need:
        return None
    mx, my = np.median(xs), np.median(ys)
    keep = (np.abs(xs - mx) <= side) & (np.abs(ys - my) <= side)
    if keep.sum() < need:
        return None
    return float(xs[keep].mean() + 0.5), float(ys[keep].mean() + 0.5)


def player_errors(
    generated: np.ndarray, player: np.ndarray, before: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The detected player against the truth, frame by frame.

    Args:
        generated: (T, H, W, 3) frames to score.
        player: (T, 2) true centre of the player in each of them.
        before: (T, 2) true centre one frame earlier (the motion is ``player - before``);
            None when only ``error`` is wanted.

    Returns:
        ``error`` (T,) distance in px of the detected centre from the true one (``inf`` where no
        player is found) and ``along`` (T,) the signed error along the true motion (``nan``
        where the player stood still or is not found, or ``before`` is None).
    """
    error = np.full(len(generated), np.inf)
    along = np.full(len(generated), np.nan)
    for t, frame in enumerate(generated):
        found = find_player(frame)
        if found is None:
            continue
        delta = np.asarray(found) - player[t]
        error[t] = np.hypot(*delta)
        if before is None:
            continue
        motion = np.asarray(player[t], np.float64) - before[t]
        if np.any(motion):
            along[t] = delta @ (motion / np.linalg.norm(motion))
    return error, along


def detect_events(frame: np.ndarray, config: GameConfig | None = None) -> dict:
    """What a frame shows, for checking that events happened.

    Returns ``{"is_night": bool, "weather": "clear"|"rain"|"snow", "wall_colour": name|None,
    "ball_colour": name|None, "ball_count": int, "player": (x, y)|None}``. ``config`` gives
    the geometry (default: ``GameConfig.for_size(frame height)``). The ball count is the number of
    ball-coloured pixels over one ball's area, rounded: overlapping balls count less.
    """
    frame = _check_frame(frame)
    c = config or GameConfig.for_size(min(max(frame.shape[0], 32), 256))
    lab = classify(frame)
    w = c.wall
    ring = np.concatenate(
        [lab[:w].ravel(), lab[-w:].ravel(), lab[w:-w, :w].ravel(), lab[w:-w, -w:].ravel()]
    )
    n_labels = len(LABELS)
    ring_counts = np.bincount(ring[ring >= 0], minlength=n_labels)
    best = int(ring_counts.argmax())
    wall_colour = (
        LABELS[best] if best >= FIRST_PALETTE and ring_counts[best] > 0.5 * ring.size else None
    )
    inner = lab[w:-w, w:-w]
    counts = np.bincount(inner[inner >= 0], minlength=n_labels)
    rain, snow = counts[LABELS.index("rain")], counts[LABELS.index("snow")]
    weather = "clear"
    if max(rain, snow) > 0.02 * inner.size:
        weather = "rain" if rain >= snow else "snow"
    r = c.ball_radius
    area = int(
        (np.add.outer(np.arange(-r, r + 1) ** 2, np.arange(-r, r + 1) ** 2) <= r * r + r).sum()
    )
    pal = counts[FIRST_PALETTE:]
    k = int(pal.argmax())
    ball_colour, ball_count = None, 0
    if pal[k] >= 0.5 * area:
        ball_colour, ball_count = COLOUR_NAMES[k], max(1, int(round(pal[k] / area)))
    return {
        "is_night": bool(counts[LABELS.index("sky_night")] > counts[LABELS.index("sky_day")]),
        "weather": weather,
        "wall_colour": wall_colour,
        "ball_colour": ball_colour,
        "ball_count": ball_count,
        "player": find_player(frame),
    }
