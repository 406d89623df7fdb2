"""Self-rollout training windows (world/rollout.py): what is generated, what stays ground truth."""

from __future__ import annotations

import numpy as np
import torch

from world.rollout import generate_after, rollout_windows


def _loaded(model, b: int, extra: int):
    cfg = model.cfg
    c = cfg.codec
    n = cfg.history_chunks + 2
    total = n + extra
    z = torch.randn(b, total, cfg.latent_frames, c.latent_channels, c.grid, c.grid)
    # every chunk's actions and caption name its own (item, chunk), so slices can be traced
    a = torch.arange(b * total).view(b, total, 1).expand(-1, -1, cfg.chunk_frames) % 6
    caps: list[str | None] = [f"item {i} chunk {j}" for i in range(b) for j in range(total)]
    return z, a.contiguous(), caps, n


def _ctx_mask(b: int, n: int, p: list[int]) -> torch.Tensor:
    return torch.arange(n)[None].expand(b, n) < torch.tensor(p)[:, None]


def test_without_rollout_windows_are_slices_at_every_offset(tiny_model):
    h = tiny_model.cfg.history_chunks
    b = 64
    z, a, caps, n = _loaded(tiny_model, b, h)
    is_ctx = _ctx_mask(b, n, [1] * b)
    zw, aw, capw, rolled = rollout_windows(
        tiny_model, z, a, caps, is_ctx, 0.0, np.random.default_rng(0)
    )
    assert rolled == 0 and zw.shape[1] == n and len(capw) == b * n
    offsets = set()
    for i in range(b):
        o = int(capw[i * n].split()[-1])
        offsets.add(o)
        assert torch.equal(zw[i], z[i, o : o + n])
        assert torch.equal(aw[i], a[i, o : o + n])
        assert capw[i * n : (i + 1) * n] == [f"item {i} chunk {o + j}" for j in range(n)]
    assert offsets == set(range(h + 1))  # windows still start at a clip's opening chunk


def test_rollout_generates_context_only_and_keeps_targets(tiny_model):
    h = tiny_model.cfg.history_chunks
    p = [0, 1, h, h]  # context chunks per item; the first has none, so it is never rolled out
    b = len(p)
    z, a, caps, n = _loaded(tiny_model, b, h)
    zw, aw, capw, rolled = rollout_windows(
        tiny_model, z, a, caps, _ctx_mask(b, n, p), 1.0, np.random.default_rng(1)
    )
    assert rolled == b - 1
    for i in range(1, b):
        assert torch.equal(aw[i], a[i, h : h + n])  # rolled-out windows sit right after history
        for j in range(n):
            same = torch.equal(zw[i, j], z[i, h + j])
            assert same == (j >= p[i]), (i, j)  # generated exactly where the context is
        assert torch.isfinite(zw[i]).all()


def test_generate_after_is_the_play_sampler_and_is_seeded(tiny_model):
    cfg = tiny_model.cfg
    c = cfg.codec
    h = cfg.history_chunks
    g = torch.Generator().manual_seed(3)
    hist = torch.randn(2, h, cfg.latent_frames, c.latent_channels, c.grid, c.grid, generator=g)
    acts = torch.randint(0, 6, (2, h, cfg.chunk_frames), generator=g)
    caps = [["night falls", None], [None, "it starts to rain"]]
    one = generate_after(tiny_model, hist, acts, acts, caps, seed=5)
    two = generate_after(tiny_model, hist, acts, acts, caps, seed=5)
    other = generate_after(tiny_model, hist, acts, acts, caps, seed=6)
    assert one.shape == (2, h, cfg.latent_frames, c.latent_channels, c.grid, c.grid)
    assert torch.equal(one, two) and not torch.equal(one, other)


def test_generate_after_takes_the_play_steps_or_those_asked_for(tiny_model):
    cfg = tiny_model.cfg
    c = cfg.codec
    g = torch.Generator().manual_seed(4)
    hist = torch.randn(1, 1, cfg.latent_frames, c.latent_channels, c.grid, c.grid, generator=g)
    acts = torch.zeros(1, 1, cfg.chunk_frames, dtype=torch.long)
    default = generate_after(tiny_model, hist, acts, acts, [[None]], seed=2)
    same = generate_after(tiny_model, hist, acts, acts, [[None]], seed=2, steps=cfg.sampler.steps)
    one = generate_after(tiny_model, hist, acts, acts, [[None]], seed=2, steps=1)
    assert torch.equal(default, same) and not torch.equal(default, one)
