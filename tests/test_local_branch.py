"""The denoiser's local branch (``DenoiserConfig.local_conv``): a 3x3 convolution over each
latent frame's token grid, square or not."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("model", ["tiny_local_model", "tiny_wide_local_model"])  # 32x32, 32x48
def test_a_local_branch_reads_the_neighbours_in_its_own_frame_only(request, model):
    """The branch reads a token's 3x3 neighbourhood in its latent frame: a change to one token
    moves the branch's output on that square and nowhere else, in no other frame."""
    model = request.getfixturevalue(model)
    block = model.denoiser.blocks[0]
    gh, gw = model.cfg.token_grid
    x = torch.randn(1, 2 * gh * gw, model.cfg.denoiser.dim)  # two latent frames of tokens
    y = x.clone()
    y[0, 2 * gw + 3] += 1.0  # one token of the first frame, at row 2, column 3
    with torch.no_grad():
        d = (block.local(y) - block.local(x)).abs().sum(-1).view(2, gh, gw)
    assert torch.equal(d[0] > 0, _square(gh, gw, 2, 3))
    assert d[1].abs().max() == 0


def _square(gh, gw, r, c):
    """(gh, gw) True on the 3x3 square around (r, c)."""
    m = torch.zeros(gh, gw, dtype=torch.bool)
    m[r - 1 : r + 2, c - 1 : c + 2] = True
    return m
