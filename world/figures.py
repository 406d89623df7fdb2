"""Pictures of rollouts for people: generated frames above the true ones, chunk by chunk.

``chunkworld eval`` writes one for its first episodes (``<out>/rollouts.png``); the README's
``docs/rollouts.png`` is that file. Plain numpy, so it needs no plotting library.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GAP_RGB = (128, 128, 128)  # between frames and between rollouts


def chunk_ticks(horizon: int) -> list[int]:
    """Chunks worth showing out of ``horizon``: the first ones, then sparser (1-based).

    ``chunk_ticks(16)`` -> ``[1, 2, 3, 4, 6, 8, 10, 12, 16]``.
    """
    ticks = [t for t in (1, 2, 3, 4, 6, 8, 10, 12, 16, 24, 32, 48, 64) if t <= horizon]
    return ticks if ticks[-1] == horizon else [*ticks, horizon]


def rollout_grid(
    rollouts: Sequence[tuple[np.ndarray, np.ndarray]], ticks: Sequence[int], gap: int = 2
) -> np.ndarray:
    """One picture of several rollouts: for each, a row of generated frames above a row of the
    true ones, showing the last frame of each chunk in ``ticks`` (1-based).

    Args:
        rollouts: pairs (generated, truth), each uint8 (n, F, H, W, 3), n >= max(ticks).
        gap: pixels of ``GAP_RGB`` between frames, and twice that between rollouts.
    Returns:
        uint8 (rows * H + gaps, len(ticks) * W + gaps, 3).
    """
    if not rollouts or not ticks:
        raise ValueError("rollout_grid needs at least one rollout and one tick")
    h, w = rollouts[0][0].shape[-3:-1]
    width = len(ticks) * (w + gap) - gap

    def band(height: int) -> np.ndarray:
        return np.full((height, width, 3), GAP_RGB, np.uint8)

    def row(chunks: np.ndarray) -> np.ndarray:  # (n, F, H, W, 3) -> (H, width, 3)
        out = band(h)
        for i, t in enumerate(ticks):  # tick t's last frame at column i
            out[:, i * (w + gap) : i * (w + gap) + w] = chunks[t - 1, -1]
        return out

    rows: list[np.ndarray] = []
    for generated, truth in rollouts:
        rows += [band(2 * gap)] if rows else []
        rows += [row(generated), band(gap), row(truth)]
    return np.concatenate(rows)
