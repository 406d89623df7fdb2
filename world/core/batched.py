"""Many worlds, one forward pass: tick ``B`` rollout states together.

Each world keeps its own ``RolloutState`` (batch 1: its cache, RNG, chunk counter) and may sit at
any tick, with its own actions and caption. :func:`tick_rows` groups the worlds whose tick runs
the same schedule (the same runner of ``PipelinedSampler.runner``: a text start's first chunk,
a prompted chunk or a plain one, and whether the chunk is prompted), and runs each group's
denoiser passes, its dynamics-prior pass and its cache pass as one batch, each world's cache
stacked into a ``RowCache`` whose index is per row. Every draw from a world's RNG happens in the
order its own tick would make it, so a world's frames do not depend on who it is batched with.

Worked example, shipped default (S = 1, ``prompt_steps`` 4, ``start_steps`` 8): worlds A (tick
40), B (tick 3) and C (just reset) step together. A and B form one group: one prior pass, one
denoiser pass and one cache pass, each at batch 2; C alone takes its 8 start steps at batch 1.

Pipelines (``in_flight`` > 1) and the no-cache path are ticked one world at a time (same API,
same frames, no speed-up).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from world.core import inflight
from world.core.cache import RowCache
from world.core.rollout_state import InFlight, RolloutState, TickResult
from world.core.sampler import PipelinedSampler
from world.core.schedule import add_noise, euler_step


@dataclass(frozen=True)
class Row:
    """One world's part of a batched tick (the arguments of ``PipelinedSampler.tick``)."""

    state: RolloutState
    actions: torch.Tensor  # (1, F) long
    text: tuple[torch.Tensor, torch.Tensor]  # tokens (1, L, Dt), mask (1, L)
    prompted: bool = False


@torch.no_grad()
def tick_rows(sampler: PipelinedSampler, rows: list[Row]) -> list[TickResult]:
    """Tick every row once; returns each row's result, in order."""
    results: list[TickResult | None] = [None] * len(rows)
    groups: dict[tuple[int, bool, int], tuple[PipelinedSampler, list[int]]] = {}
    for i, row in enumerate(rows):
        assert row.actions.shape[0] == 1, "one world per row"
        if sampler.in_flight != 1 or not sampler.use_cache or row.state.in_flight:
            results[i] = sampler.tick(row.state, row.actions, row.text, prompted=row.prompted)
            continue
        runner = sampler.runner(row.state, row.prompted)
        # captions of one length: padding one would change its cross-attention's kernel path
        key = (id(runner), row.prompted, row.text[0].shape[1])
        groups.setdefault(key, (runner, []))[1].append(i)
    for runner, members in groups.values():
        for i, result in zip(members, _tick_group(runner, [rows[i] for i in members]), strict=True):
            results[i] = result
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def _tick_group(sampler: PipelinedSampler, rows: list[Row]) -> list[TickResult]:
    """Rows with one schedule (W = 1): admit, ``steps`` batched passes, a batched cache pass."""
    device = sampler.device
    _admit(sampler, rows)
    cache = RowCache.stack([r.state.cache for r in rows])
    traces: list[list[tuple[tuple[int, float], ...]]] = [[] for _ in rows]
    forwards = 0
    while rows[0].state.in_flight[0].step < sampler.steps:
        parts = [inflight.gather(r.state, sampler.grid, device) for r in rows]
        batch = _join(parts)
        v = sampler._velocity(None, batch, cache)
        x = euler_step(
            batch.x,
            v,
            batch.levels[..., None, None, None, None],
            batch.next_levels[..., None, None, None, None],
        )
        for r, row in enumerate(rows):
            traces[r].append(inflight.advance(row.state, x[r : r + 1], sampler.grid))
        forwards += 1
    done = [r.state.in_flight.pop(0) for r in rows]
    results = sampler.emit(done, forwards, [tuple(t) for t in traces])
    _commit(sampler, rows, done, [r.kept for r in results], cache)
    return results


def _admit(sampler: PipelinedSampler, rows: list[Row]) -> None:
    """``PipelinedSampler._admit`` for every row, the dynamics prior's guesses in one pass."""
    cfg, c = sampler.cfg, sampler.cfg.codec
    shape = (1, cfg.latent_frames, c.latent_channels, *c.grid)
    noise = [sampler._randn(r.state, shape) for r in rows]  # each world's own RNG, first draw
    top = [1.0] * len(rows)
    if sampler.prior_level:
        lasts = [None if r.prompted else r.state.last_frames(2) for r in rows]
        use = [i for i, last in enumerate(lasts) if last is not None]
        if use:
            assert sampler.model.prior is not None
            last = torch.cat([lasts[i] for i in use])  # type: ignore[misc]
            acts = torch.cat([rows[i].actions for i in use])
            with sampler._precision():
                guess = sampler.model.prior(last, acts).float()
            for j, i in enumerate(use):
                noise[i] = add_noise(guess[j : j + 1], noise[i], sampler.prior_level)
                top[i] = sampler.prior_level
    for row, latent, t in zip(rows, noise, top, strict=True):
        st = row.state
        st.in_flight.append(
            InFlight(
                chunk=st.next_chunk,
                latent=latent,
                step=0,
                actions=row.actions,
                text=row.text,
                prompted=row.prompted,
                top=t,
            )
        )
        st.next_chunk += 1


def _join(parts: list[inflight.Batch]) -> inflight.Batch:
    """Stack one-world batches (n = 1 each) on the batch axis; captions zero-padded (masked)."""
    length = max(p.text[0].shape[2] for p in parts)
    return inflight.Batch(
        x=torch.cat([p.x for p in parts]),
        levels=torch.cat([p.levels for p in parts]),
        next_levels=torch.cat([p.next_levels for p in parts]),
        actions=torch.cat([p.actions for p in parts]),
        text=(
            torch.cat([inflight.pad(p.text[0], length, dim=2) for p in parts]),
            torch.cat([inflight.pad(p.text[1], length, dim=2) for p in parts]),
        ),
        chunks=torch.stack([p.chunks for p in parts]),  # (B, n): each world's own
        context=(
            torch.cat([p.context[0] for p in parts]),
            torch.cat([p.context[1] for p in parts]),
        ),
        prompted=parts[0].prompted,
    )


def _commit(
    sampler: PipelinedSampler,
    rows: list[Row],
    done: list[InFlight],
    kept: list[torch.Tensor],
    cache: RowCache,
) -> None:
    """``PipelinedSampler._commit`` for every row: noise each clean chunk (``kept``: what the
    cache keeps of it) with its world's RNG, then one cache pass for all, written back into each
    world's own cache."""
    x_ctx = torch.cat(
        [
            add_noise(k, sampler._randn(r.state, k.shape), sampler.context_level)
            for r, k in zip(rows, kept, strict=True)
        ]
    )
    actions = torch.cat([d.actions for d in done])
    chunks = torch.tensor([d.chunk for d in done])
    tokens, mask = sampler.null_text(len(rows))
    with sampler._precision():
        sampler.model.denoiser.encode_history(
            cache, chunks, x_ctx, sampler.context_level, actions, (tokens, mask)
        )
    cache.unstack([r.state.cache for r in rows], chunks)
    for r, (row, d) in enumerate(zip(rows, done, strict=True)):
        st, slot = row.state, row.state.cache.slot_of(d.chunk)
        st.context_inputs[slot] = x_ctx[r : r + 1]
        st.context_actions[slot] = d.actions
        st.last_clean = x_ctx[r : r + 1, -1]
        st.last_clean_chunk = d.chunk
