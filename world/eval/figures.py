"""Pictures for people: rollouts (generated frames above the true ones, chunk by chunk) and the
evaluation's curves.

``chunkworld eval`` writes the rollouts of its first episodes (``<out>/rollouts.png``, plain numpy,
so it needs no plotting library; the README's ``docs/rollouts.png`` is that file) and its curves
(``<out>/eval.png``, with matplotlib when it is installed; :func:`pyplot` is how every plot of the
package gets it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend, or None when matplotlib is missing (the
    plots are optional; what they show is in the JSON beside them). Close each figure after
    saving it: pyplot keeps every figure until closed, so a long-lived process would leak."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_eval(result: dict[str, Any], path: Path) -> None:
    """PSNR per horizon (model, copy-last, codec round trip) and following and balls kept per
    horizon, from ``chunkworld eval``'s result, to ``path``."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    x = np.arange(1, len(result["psnr_db"]) + 1)
    ax[0].plot(x, result["psnr_db"], "o-", label="model")
    ax[0].plot(x, result["copy_last_psnr_db"], "s--", label="copy last frame")
    ax[0].plot(x, result["codec_round_trip_psnr_db"], ":", label="codec round trip")
    ax[0].set(xlabel="chunks ahead", ylabel="PSNR (dB)", title="prediction vs ground truth")
    ax[0].legend()
    ax[1].plot(x, result["action_following_per_chunk"], "o-", label="player within 2 px")
    ax[1].plot(x, result["balls_kept_per_chunk"], "s--", label="balls kept")
    ax[1].set(xlabel="chunks ahead", ylabel="share of frames", ylim=(0, 1.05), title="vs truth")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
