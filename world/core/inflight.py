"""The pipeline of chunks in flight: ``W`` chunks, each at its own step of the sampling grid,
denoised together by one network pass per step.

The grid runs ``g[0] = 1 (noise) > g[1] > ... > g[S] = 0 (clean)``. A new chunk enters every
``m = S / W`` passes, so chunks in flight sit ``m`` steps apart; when the oldest reaches clean it
leaves. Worked example, S = 4, W = 4 (m = 1), grid g = [1, .75, .5, .25, 0], steady state, one
tick: admit chunk c at step 0 -> in flight (oldest first) at steps [3, 2, 1, 0], levels
[.25, .5, .75, 1]; one pass -> steps [4, 3, 2, 1]; chunk c - 3 is clean and leaves. With W = 1 a
tick admits one chunk and runs S passes on it alone.

A chunk started from the dynamics prior's guess walks the grid scaled by its ``top`` level
(``InFlight.top``): levels ``top * g[step]``.

:func:`gather` stacks the chunks in flight into the tensors of one pass, :func:`advance` writes
the stepped latents back; :func:`with_history` prepends the held history chunks, for the path
that recomputes history instead of reading the cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from world.core.rollout_state import RolloutState


@dataclass(frozen=True)
class Batch:
    """The chunks in flight as the tensors of one network pass (oldest chunk first)."""

    x: torch.Tensor  # (B, n, Tl, C, h, w) latents at their levels
    levels: torch.Tensor  # (B, n) each chunk's level now
    next_levels: torch.Tensor  # (B, n) the level one step down the grid
    actions: torch.Tensor  # (B, n, F)
    text: tuple[torch.Tensor, torch.Tensor]  # captions (B, n, L, Dt), masks (B, n, L)
    chunks: torch.Tensor  # (n,) absolute chunk indices
    context: tuple[torch.Tensor, torch.Tensor]  # direct path: (B, n, C, h, w), valid (B, n)
    prompted: list[bool]  # per chunk: its caption just changed (text guidance at prompt scale)


def gather(state: RolloutState, grid: torch.Tensor, device: torch.device) -> Batch:
    """One pass's inputs from ``state.in_flight``. The direct path of each chunk is the previous
    chunk's last latent frame as it is held right now: the chunk in flight before it, or for the
    oldest the newest clean chunk, if that is the one just before."""
    fl = state.in_flight
    b = fl[0].latent.shape[0]
    x = torch.stack([f.latent for f in fl], dim=1)  # (B, n, Tl, C, h, w)
    levels = torch.stack([(f.top * grid[f.step]).expand(b) for f in fl], 1)
    nxt = torch.stack([(f.top * grid[f.step + 1]).expand(b) for f in fl], 1)
    actions = torch.stack([f.actions for f in fl], dim=1)  # (B, n, F)
    length = max(f.text[0].shape[1] for f in fl)
    tokens = torch.stack([pad(f.text[0], length) for f in fl], dim=1)  # (B, n, L, Dt)
    mask = torch.stack([pad(f.text[1], length) for f in fl], dim=1)  # (B, n, L)
    ctx, valid = [], []
    for i, f in enumerate(fl):
        if i > 0:
            ctx.append(fl[i - 1].latent[:, -1])
            valid.append(True)
        elif state.last_clean is not None and state.last_clean_chunk == f.chunk - 1:
            ctx.append(state.last_clean)
            valid.append(True)
        else:
            ctx.append(torch.zeros_like(f.latent[:, -1]))
            valid.append(False)
    return Batch(
        x=x,
        levels=levels.to(device),
        next_levels=nxt.to(device),
        actions=actions,
        text=(tokens, mask),
        chunks=torch.tensor([f.chunk for f in fl], device=device),
        context=(
            torch.stack(ctx, dim=1),
            torch.tensor(valid, device=device)[None].expand(b, -1),
        ),
        prompted=[f.prompted for f in fl],
    )


def advance(
    state: RolloutState, x: torch.Tensor, grid: torch.Tensor
) -> tuple[tuple[int, float], ...]:
    """Write the stepped latents (B, n, ...) back, one step further each; returns the pass's
    trace: (chunk, the level it was denoised from), oldest first."""
    for i, f in enumerate(state.in_flight):
        f.latent = x[:, i]
        f.step += 1
    return tuple((f.chunk, float(f.top * grid[f.step - 1])) for f in state.in_flight)


def with_history(
    state: RolloutState,
    batch: Batch,
    text: tuple[torch.Tensor, torch.Tensor],
    null_text: tuple[torch.Tensor, torch.Tensor],
    context_level: float,
) -> tuple[Batch, torch.Tensor]:
    """The held history chunks (as cached: noised inputs, null caption, clean-history flag)
    before the chunks in flight, for one masked pass without the cache; ``text`` the in-flight
    chunks' captions for this pass. Returns the batch and its (B, m + n) is-history mask."""
    held = [int(s) for s in torch.argsort(state.cache.index) if state.cache.index[s] >= 0]
    m = len(held)
    x, ctx = batch.x, batch.context[0]
    b, n = x.shape[:2]
    device = x.device
    tokens, mask = null_text
    length = max(tokens.shape[1], text[0].shape[2])
    ht = pad(tokens, length)[:, None].expand(-1, m, -1, -1)
    hm = pad(mask, length)[:, None].expand(-1, m, -1)
    is_history = torch.cat(
        [
            torch.ones(b, m, dtype=torch.bool, device=device),
            torch.zeros(b, n, dtype=torch.bool, device=device),
        ],
        1,
    )
    joined = Batch(
        x=torch.cat([state.context_inputs[held].transpose(0, 1), x], dim=1),
        levels=torch.cat([torch.full((b, m), context_level, device=device), batch.levels], 1),
        next_levels=batch.next_levels,
        actions=torch.cat([state.context_actions[held].transpose(0, 1), batch.actions], 1),
        text=(
            torch.cat([ht, pad(text[0], length, dim=2)], 1),
            torch.cat([hm, pad(text[1], length, dim=2)], 1),
        ),
        chunks=torch.cat([state.cache.index[held], batch.chunks]),
        context=(
            torch.cat([torch.zeros_like(ctx[:, :1]).expand(-1, m, -1, -1, -1), ctx], 1),
            torch.cat([torch.zeros(b, m, dtype=torch.bool, device=device), batch.context[1]], 1),
        ),
        prompted=[False] * m + batch.prompted,
    )
    return joined, is_history


def pad(t: torch.Tensor, length: int, dim: int = 1) -> torch.Tensor:
    """Zero-pad ``t`` along ``dim`` (a caption's token axis) to ``length``."""
    extra = length - t.shape[dim]
    if extra == 0:
        return t
    shape = list(t.shape)
    shape[dim] = extra
    return torch.cat([t, torch.zeros(shape, dtype=t.dtype, device=t.device)], dim=dim)
