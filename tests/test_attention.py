"""Positions and the attention rule (``world/core/attention.py``): the worked examples of its docstrings
and the property rotary positions exist for."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from world.core.attention import RoPE3D, additive_mask, chunk_mask, token_positions


def test_the_rule_of_the_docstring_k2_two_context_two_noisy():
    chunks = torch.arange(4)
    is_ctx = torch.tensor([[True, True, False, False]])
    seen = chunk_mask(chunks, is_ctx, chunks, reach=2)[0]
    assert [torch.nonzero(row).flatten().tolist() for row in seen] == [
        [0],
        [1],
        [0, 1, 2],
        [1, 2, 3],
    ]


def test_empty_slots_are_never_seen_and_no_history_sees_only_itself():
    q = torch.tensor([5])
    keys = torch.tensor([3, -1, 4, 5])  # a ring with one empty slot
    noisy = torch.tensor([[False]])
    assert chunk_mask(q, noisy, keys, reach=2)[0, 0].tolist() == [True, False, True, True]
    assert chunk_mask(q, noisy, keys, reach=2, use_history=False)[0, 0].tolist() == [
        False,
        False,
        False,
        True,
    ]


def test_additive_mask_is_none_when_all_attend_and_minus_inf_where_not():
    assert additive_mask(torch.ones(1, 2, 3, dtype=torch.bool)) is None
    m = additive_mask(torch.tensor([[True, False]]))
    assert m is not None and m.tolist() == [[0.0, float("-inf")]]


def test_token_positions_worked_example():
    # chunk 3 of 2 latent frames on a 2x2 grid, ref 5: times 3*2+0-5 = 1 and 2
    pos = token_positions(torch.tensor([3]), latent_frames=2, grid=(2, 2), ref=5)
    assert pos.tolist() == [
        [1, 0, 0], [1, 0, 1], [1, 1, 0], [1, 1, 1],
        [2, 0, 0], [2, 0, 1], [2, 1, 0], [2, 1, 1],
    ]  # fmt: skip
    # one latent frame on a grid of 1 row and 3 columns: rows, then columns within a row
    wide = token_positions(torch.tensor([0]), latent_frames=1, grid=(1, 3), ref=0)
    assert wide.tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2]]


@settings(max_examples=20, deadline=None)
@given(
    a=st.tuples(st.integers(-50, 50), st.integers(0, 7), st.integers(0, 7)),
    b=st.tuples(st.integers(-50, 50), st.integers(0, 7), st.integers(0, 7)),
    shift=st.integers(-1000, 1000),
    seed=st.integers(0, 999),
)
def test_rotary_scores_depend_only_on_the_offset_in_time(a, b, shift, seed):
    """q.k after rotation is unchanged when both tokens move by the same time shift, which is
    why any ``ref`` in ``token_positions`` gives the same attention."""
    rope = RoPE3D(head_dim=64, theta=100.0)
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 1, 1, 1, 64, generator=g, dtype=torch.float64)

    def score(pa: tuple[int, int, int], pb: tuple[int, int, int]) -> float:
        pos = torch.tensor([pa, pb], dtype=torch.float64)
        cos, sin = rope.angles(pos)
        rq = rope.rotate(q, cos[:1], sin[:1])
        rk = rope.rotate(k, cos[1:], sin[1:])
        return float((rq * rk).sum())

    moved = ((a[0] + shift, a[1], a[2]), (b[0] + shift, b[1], b[2]))
    assert abs(score(a, b) - score(*moved)) < 1e-9 * (1 + abs(score(a, b)))
    # and the rotation keeps each vector's length
    cos, sin = rope.angles(torch.tensor([a], dtype=torch.float64))
    torch.testing.assert_close(rope.rotate(q, cos, sin).norm(), q.norm())
