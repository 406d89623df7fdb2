"""Positions and the attention mask of the chunk-causal transformer (``world/core/denoiser.py``).

Time embeddings of scalars, 3D rotary positions over (time, row, column), and which chunk may
attend to which.

Attention rule, at chunk granularity (``K`` = history_chunks):

    a context chunk (clean history)  sees only itself
    a noisy chunk c                  sees itself and every chunk j with c - K <= j < c

so a chunk's output depends on exactly the last ``K`` chunks. Worked example, K = 2, chunks 0..3
with 0, 1 context and 2, 3 noisy: 0 -> {0}, 1 -> {1}, 2 -> {0, 1, 2}, 3 -> {1, 2, 3}.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoid(x: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """Sinusoidal embedding of scalars: (...,) -> (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=x.device) / half)
    angles = x.float()[..., None] * scale * freqs
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class RoPE3D(nn.Module):
    """Rotary positions over (time, row, column). Rotates the first ``rot`` channels of a head.

    The head is split as dt = 2 * (hd // 8) channels for time, dy = dx = 2 * ((hd - dt) // 4) for
    rows and columns; the rest passes unrotated. hd = 64 -> dt = 16, dy = dx = 24.
    """

    def __init__(self, head_dim: int, theta: float) -> None:
        super().__init__()
        dt = 2 * (head_dim // 8)
        dyx = 2 * ((head_dim - dt) // 4)
        self.rot = dt + 2 * dyx
        freqs = [theta ** (-torch.arange(0, d, 2).float() / d) for d in (dt, dyx, dyx)]
        self.f_t: torch.Tensor
        self.f_y: torch.Tensor
        self.f_x: torch.Tensor
        self.register_buffer("f_t", freqs[0], persistent=False)
        self.register_buffer("f_y", freqs[1], persistent=False)
        self.register_buffer("f_x", freqs[2], persistent=False)

    def angles(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pos (N, 3) float (time, row, col) -> cos, sin (N, rot / 2)."""
        a = torch.cat(
            [pos[:, :1] * self.f_t, pos[:, 1:2] * self.f_y, pos[:, 2:3] * self.f_x], dim=-1
        )
        return a.cos(), a.sin()

    def rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x (B, heads, N, hd) rotated pairwise: channel i with channel i + rot/2."""
        h = self.rot // 2
        x1, x2, rest = x[..., :h], x[..., h : 2 * h], x[..., 2 * h :]
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest], dim=-1)


def token_positions(
    chunk_index: torch.Tensor, latent_frames: int, grid: tuple[int, int], ref: int
) -> torch.Tensor:
    """(time, row, col) of every token of the given chunks, time relative to ``ref``.

    chunk_index (n,) -> (n * latent_frames * rows * cols, 3), ``grid`` = (rows, cols). Time of latent frame j of chunk c is
    ``c * latent_frames + j - ref``; RoPE depends only on differences, so any ``ref`` gives the
    same attention, and a small one keeps angles small after 10,000 ticks.
    """
    t = chunk_index[:, None] * latent_frames + torch.arange(
        latent_frames, device=chunk_index.device
    )
    t = (t - ref).float()  # (n, Tl)
    rows, cols = grid
    r = torch.arange(rows, device=chunk_index.device).float()
    c = torch.arange(cols, device=chunk_index.device).float()
    tt = t[:, :, None, None].expand(-1, -1, rows, cols)
    rr = r[None, None, :, None].expand_as(tt)
    cc = c[None, None, None, :].expand_as(tt)
    return torch.stack([tt, rr, cc], dim=-1).reshape(-1, 3)


def chunk_mask(
    q_chunks: torch.Tensor,
    q_context: torch.Tensor,
    k_chunks: torch.Tensor,
    reach: int,
    use_history: bool = True,
) -> torch.Tensor:
    """Which query chunk may attend to which key chunk (the rule in the module docstring).

    Args:
        q_chunks: (n,) absolute indices of the chunks computed in this call.
        q_context: (B, n) True where a chunk is clean history (attends only to itself).
        k_chunks: (m,) absolute indices of key chunks (-1 = an empty cache slot, never attended).
        reach: K, how many earlier chunks a noisy chunk sees.
        use_history: False attends every chunk only to itself (the "no history" guidance pass).
    Returns:
        (B, n, m) bool, True = attend.
    """
    q = q_chunks[None, :, None]
    k = k_chunks[None, None, :]
    same = q == k
    earlier = (k >= 0) & (k < q) & (k >= q - reach) & ~q_context[:, :, None]
    if not use_history:
        earlier = torch.zeros_like(earlier)
    return same | earlier


def additive_mask(mask: torch.Tensor) -> torch.Tensor | None:
    """Bool attention mask -> additive float mask (0 attend, -inf not), or None when all attend.

    Built once per forward: handing SDPA a bool mask makes it convert the mask again in every
    attention call (measured: ~5% of a W=1 tick), and an all-True mask is no mask at all. Every row
    must keep one True (a chunk always sees itself; a caption always has its summary token).
    """
    if bool(mask.all()):
        return None
    return torch.zeros(mask.shape, device=mask.device).masked_fill_(~mask, float("-inf"))
