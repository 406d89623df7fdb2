"""The noise schedule (``world/core/schedule.py``): sampling grids, training levels, the sprite
weighting of the loss, and the Euler step."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from world.core.schedule import (
    euler_step,
    salience_weight,
    sampling_grid,
    shift_levels,
    training_levels,
)


def test_grids_and_shift():
    assert sampling_grid(4, 1.0).tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    torch.testing.assert_close(sampling_grid(4, 3.0), torch.tensor([1.0, 0.9, 0.75, 0.5, 0.0]))
    assert float(shift_levels(torch.tensor(0.5), 3.0)) == 0.75


@settings(max_examples=20, deadline=None)
@given(chunks=st.integers(2, 8), seed=st.integers(0, 10_000))
def test_training_levels_never_decrease_after_context(chunks, seed):
    g = torch.Generator().manual_seed(seed)
    levels, is_ctx = training_levels(16, chunks, g)
    assert levels.shape == (16, chunks) and ((levels >= 0) & (levels <= 1)).all()
    noisy = ~is_ctx
    for b in range(16):
        lv = levels[b][noisy[b]]
        assert (lv[1:] >= lv[:-1]).all()
        assert (levels[b][is_ctx[b]] <= 0.1).all()
        # context chunks form a prefix
        assert is_ctx[b].long().tolist() == sorted(is_ctx[b].long().tolist(), reverse=True)


@settings(max_examples=20, deadline=None)
@given(chunks=st.integers(2, 8), seed=st.integers(0, 10_000))
def test_training_levels_pure_noise_share(chunks, seed):
    """p_pure = 0 is the default stream exactly; p_pure = 1 starts every noisy run at level 1."""
    plain = training_levels(16, chunks, torch.Generator().manual_seed(seed))
    zero = training_levels(16, chunks, torch.Generator().manual_seed(seed), p_pure=0.0)
    assert all(torch.equal(a, b) for a, b in zip(plain, zero, strict=True))
    levels, is_ctx = training_levels(16, chunks, torch.Generator().manual_seed(seed), p_pure=1.0)
    assert torch.equal(is_ctx, plain[1])  # the context prefix is drawn as before
    assert (levels[~is_ctx] == 1.0).all() and (levels[is_ctx] <= 0.1).all()


def test_training_levels_pure_noise_rate():
    levels, is_ctx = training_levels(4000, 4, torch.Generator().manual_seed(0), p_pure=0.5)
    first = levels.gather(1, is_ctx.sum(1, keepdim=True).clamp(max=3))[:, 0]
    # half of the windows are set to 1; shift 3 puts another 0.5 * P(u = 1) ~ 0 exactly at 1
    assert 0.46 < float((first == 1.0).float().mean()) < 0.54


# 6. flow matching -------------------------------------------------------------------------------
def test_salience_weights_the_sprite_where_it_is_and_where_it_was():
    # Two latent frames of a textured 4x4 frame (the texture raises every token's distance to the
    # median, as weather does); a sprite token at (0, 0) moves to (3, 3). With share 2/16 each
    # frame weights its two most standing-out and its two most changed tokens.
    g = torch.Generator().manual_seed(0)
    z = 0.3 * torch.randn(1, 1, 2, 4, 4, 4, generator=g)
    z[0, 0, 1] = z[0, 0, 0]  # same texture in both frames: only the sprite moves
    z[0, 0, 0, :, 0, 0] += 5.0
    z[0, 0, 1, :, 3, 3] += 5.0
    w = salience_weight(z, boost=8.0, share=2 / 16)
    assert w.shape == (1, 1, 2, 1, 4, 4)
    assert set(w.unique().tolist()) == {1.0, 9.0}
    heavy = w[0, 0, :, 0] > 1
    # frame 1: the sprite where it is, and where it was (the only two tokens that changed)
    assert heavy[1, 3, 3] and heavy[1, 0, 0]
    # frame 0 has no predecessor and borrows frame 1's motion: the same two tokens
    assert heavy[0, 0, 0] and heavy[0, 3, 3]
    assert bool((heavy.sum(dim=(1, 2)) <= 4).all())


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.sampled_from([0.05, 0.1, 0.25]), st.integers(0, 99))
def test_salience_weights_between_share_and_twice_share(n, tl, share, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2, n, tl, 3, 8, 8, generator=g)
    heavy = (salience_weight(z, boost=4.0, share=share) > 1).flatten(3).sum(-1)
    k = max(1, round(share * 64))
    assert bool(((heavy >= k) & (heavy <= 2 * k)).all())


@settings(max_examples=20, deadline=None)
@given(steps=st.integers(1, 16), seed=st.integers(0, 1000))
def test_euler_on_straight_flow_reaches_target(steps, seed):
    """For the flow-matching path of a single point the velocity is constant: Euler is exact."""
    g = torch.Generator().manual_seed(seed)
    x0, noise = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    grid = sampling_grid(steps, 3.0)
    x = noise.clone()
    for i in range(steps):
        v = noise - x0  # the true velocity field of this path
        x = euler_step(x, v, grid[i], grid[i + 1])
    torch.testing.assert_close(x, x0, rtol=1e-5, atol=1e-5)


def test_euler_on_curved_field_converges():
    """dx/dt = x (solution x(t) = x(1) e^(t-1)): error shrinks ~ linearly with steps."""
    errs = []
    for steps in (8, 64):
        grid = sampling_grid(steps)
        x = torch.tensor([1.0])
        for i in range(steps):
            x = euler_step(x, x, grid[i], grid[i + 1])
        errs.append(abs(float(x) - float(torch.exp(torch.tensor(-1.0)))))
    assert errs[1] < errs[0] / 6
