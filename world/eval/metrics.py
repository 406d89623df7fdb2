"""Image metrics on uint8 frames (PSNR, SSIM) and the 95% intervals the evaluation reports."""

from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between uint8 images/videos of equal shape (inf if equal)."""
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def _blur(x: np.ndarray, radius: int = 3) -> np.ndarray:
    """Box filter over the two spatial axes (..., H, W), 'valid' region."""
    k = 2 * radius + 1
    c = np.cumsum(np.cumsum(np.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 0), (1, 0)]), -2), -1)
    s = c[..., k:, k:] - c[..., :-k, k:] - c[..., k:, :-k] + c[..., :-k, :-k]
    return s / (k * k)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity of uint8 images (..., H, W, 3), 7x7 box windows, per channel."""
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ {a.shape} vs {b.shape}")
    x = np.moveaxis(a.astype(np.float64), -1, -3)
    y = np.moveaxis(b.astype(np.float64), -1, -3)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _blur(x), _blur(y)
    vx = _blur(x * x) - mx * mx
    vy = _blur(y * y) - my * my
    cxy = _blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def wilson_interval(hits: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% (by default) Wilson score interval of a success share ``hits / trials``.

    Prompt trials are independent yes/no outcomes; the Wilson interval stays inside [0, 1] and
    is honest at shares near 0 or 1, where the normal approximation is not. 36 of 40 gives
    (0.769, 0.960): forty trials cannot tell a 90% model from an 85% one.
    """
    if trials <= 0 or not 0 <= hits <= trials:
        raise ValueError(f"need 0 <= hits <= trials and trials > 0, got {hits} of {trials}")
    p, z2 = hits / trials, z * z
    denom = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * np.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    # at 0 or all hits the bound is exactly 0 or 1; rounding would leave it a hair inside
    lo = 0.0 if hits == 0 else max(0.0, centre - half)
    hi = 1.0 if hits == trials else min(1.0, centre + half)
    return float(lo), float(hi)


def mean_interval(per_unit: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """95% (by default) normal interval of the mean of independent units, clipped to [0, 1].

    For action following the unit is the episode, not the frame: the frames of one rollout fail
    together (once the player has drifted it stays off), so counting frames as independent
    would claim a precision the episodes do not have.
    """
    x = np.asarray(per_unit, dtype=np.float64)
    if x.ndim != 1 or len(x) < 2:
        raise ValueError(f"need a 1-D array of at least 2 units, got shape {x.shape}")
    half = z * float(x.std(ddof=1)) / np.sqrt(len(x))
    m = float(x.mean())
    return max(0.0, m - half), min(1.0, m + half)
