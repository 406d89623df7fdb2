"""Noise schedule and flow matching, as pure functions.

Convention (the only one in this code base): level ``t = 0`` is clean, ``t = 1`` is pure noise::

    x_t = (1 - t) * x0 + t * noise          velocity v = dx_t/dt = noise - x0

The network predicts ``v``; an Euler step from level ``t`` to ``t_next < t`` is
``x_next = x_t + (t_next - t) * v``. Every chunk has its own level, so ``t`` is a tensor that
broadcasts over each chunk's latents.
"""

from __future__ import annotations

import torch


def shift_levels(u: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3 / MAGI-1 timestep shift: ``shift > 1`` pushes levels toward noise (t = 1).

    ``shift_levels(0.5, 3.0) = 1.5 / 2.0 = 0.75``. Endpoints are fixed: 0 -> 0, 1 -> 1.
    """
    return shift * u / (1.0 + (shift - 1.0) * u)


def sampling_grid(steps: int, shift: float = 1.0) -> torch.Tensor:
    """Levels visited by ``steps`` Euler steps, from 1 (noise) down to 0 (clean): ``steps + 1`` values.

    ``sampling_grid(4, 1.0) = [1.0, 0.75, 0.5, 0.25, 0.0]``;
    ``sampling_grid(4, 3.0) = [1.0, 0.9, 0.75, 0.5, 0.0]``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return shift_levels(u, shift).to(torch.float32)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """``x_t = (1 - t) x0 + t noise``; ``t`` broadcasts against ``x0`` (e.g. shape (B, N, 1, 1, 1, 1))."""
    return (1.0 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The flow-matching regression target ``v = noise - x0``."""
    return noise - x0


def predict_clean(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The clean estimate implied by a velocity: ``x0 = x_t - t v``."""
    return x_t - t * v


def euler_step(
    x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor
) -> torch.Tensor:
    """One Euler step along the velocity from level ``t`` to ``t_next`` (each broadcastable per chunk)."""
    return x_t + (t_next - t) * v


def flow_loss(
    v_pred: torch.Tensor,
    v_target: torch.Tensor,
    weight: torch.Tensor,
    element_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared velocity error over the chunks where ``weight`` > 0.

    Args:
        v_pred, v_target: (B, N, ...) per-chunk tensors.
        weight: (B, N) weights; clean context chunks get 0 (no loss on what the model is given).
        element_weight: optional weights broadcastable to ``v_pred`` (e.g. per token), normalised
            per chunk so that they shift emphasis without changing the loss scale.
    """
    err = (v_pred.float() - v_target.float()).pow(2)
    if element_weight is None:
        per_chunk = err.flatten(2).mean(-1)  # (B, N)
    else:
        w = element_weight.float().expand_as(err)
        per_chunk = (err * w).flatten(2).sum(-1) / w.flatten(2).sum(-1).clamp_min(1e-8)
    return (per_chunk * weight).sum() / weight.sum().clamp_min(1e-8)


def salience_weight(z: torch.Tensor, boost: float = 8.0, share: float = 0.1) -> torch.Tensor:
    """Per-token loss weights: ``1 + boost`` on the tokens of a latent frame that hold sprites.

    Sprites (the player, balls, bolts) cover a few tokens of a mostly flat frame; under a plain
    mean they are a rounding error of the loss and a model learns to blur them away. A token is
    weighted when it is among the ``share`` of its frame's tokens farthest from the frame's median
    token (what stands out), or among the ``share`` that changed most since the previous latent
    frame (what moved, including the place a sprite left, which a model must clear).

    Ranking, not a threshold on distance: a weather texture raises every distance. The earlier
    rule, "over 3x the frame's median distance", weighted 16-19% of the player's tokens and 3-10%
    of the balls' and bolts' under rain or snow (44% and 25% under a clear sky). With ``share``
    0.1 this rule weights 67-78% of the player's and 47-75% of the balls' and bolts', 14-15% of
    all tokens (2026-11-24, shipped codec, 50 training clips:
    ``chunkworld diagnose salience``, a tool since removed: docs/experiments.md).
    z (B, N, Tl, C, h, w) clean latents -> (B, N, Tl, 1, h, w).
    """
    b, n, tl, c, h, w = z.shape
    k = max(1, round(share * h * w))
    frames = z.reshape(b, n * tl, c, h * w).float()
    med = frames.median(dim=-1, keepdim=True).values
    standout = (frames - med).pow(2).sum(dim=2)  # (B, T, h w)
    change = torch.zeros_like(standout)
    if n * tl > 1:
        change[:, 1:] = (frames[:, 1:] - frames[:, :-1]).pow(2).sum(dim=2)
        change[:, 0] = change[:, 1]  # the first frame has no predecessor: its successor's motion
    mask = torch.zeros_like(standout)
    for score in (standout, change):
        mask.scatter_(-1, score.topk(k, dim=-1).indices, 1.0)
    return (1.0 + boost * mask).view(b, n, tl, 1, h, w)


def training_levels(
    batch: int,
    chunks: int,
    generator: torch.Generator,
    *,
    shift: float = 3.0,
    context_max: float = 0.1,
    max_context: int | None = None,
    p_no_context: float = 0.1,
    p_pure: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-chunk levels for a training clip, exactly the situations the pipelined sampler meets.

    Each clip gets ``p`` clean context chunks (levels in ``[0, context_max]``: a little noise against
    drift), then noisy chunks whose levels never decrease along time. The first noisy chunk's
    level is drawn over the whole range, shifted toward noise, so "clean history then pure
    noise" (where sampling starts) is common; later chunks sit further up, as in-flight chunks do.
    A share ``p_pure`` of clips instead start their noisy chunks at exactly 1: the only level a
    one-step sampler ever denoises, met by 14% of clips otherwise (shift 3 puts ``first >= 0.95``
    at ``u >= 0.864``).

    Worked example, chunks = 5, p = 2: levels ``[0.03, 0.08, 0.71, 0.93, 1.0]``, context mask
    ``[1, 1, 0, 0, 0]``.

    Returns:
        levels (B, N) float32 and is_context (B, N) bool.
    """
    max_context = chunks - 1 if max_context is None else min(max_context, chunks - 1)
    p = torch.randint(1, max_context + 1, (batch,), generator=generator)
    p = torch.where(torch.rand(batch, generator=generator) < p_no_context, torch.zeros_like(p), p)
    idx = torch.arange(chunks).expand(batch, chunks)
    is_context = idx < p[:, None]  # (B, N)
    first = shift_levels(torch.rand(batch, generator=generator), shift)  # (B,)
    if p_pure > 0:  # drawn only when asked, so p_pure = 0 keeps the generator's stream
        first = torch.where(torch.rand(batch, generator=generator) < p_pure, 1.0, first)
    # Steps between consecutive noisy chunks: 0 .. 0.5 (in-flight spacing for W = 2..4 and more).
    gaps = torch.rand(batch, chunks, generator=generator) * 0.5
    offset = torch.cumsum(torch.where(is_context, 0.0, gaps), dim=1)
    first_gap = torch.gather(offset, 1, p.clamp(max=chunks - 1)[:, None])  # gap of the first noisy
    noisy = (first[:, None] + (offset - first_gap)).clamp(0.0, 1.0)  # exactly `first` at p
    ctx = torch.rand(batch, chunks, generator=generator) * context_max
    levels = torch.where(is_context, ctx, noisy)
    return levels.float(), is_context
