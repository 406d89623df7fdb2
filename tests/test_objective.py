"""The denoiser's training objective: which levels its windows get, and the pixel term."""

from __future__ import annotations

import pytest
import torch

from world.core.config import preset
from world.core.model import WorldModel
from world.train.denoiser import DenoiseObjective
from world.train.recipe import TrainConfig


def test_pure_noise_reaches_the_training_windows():
    model = WorldModel(preset("tiny"))
    obj = DenoiseObjective(model, TrainConfig(pure_noise=1.0, context_max=0.1))
    levels, is_ctx = obj.levels(64, 4, torch.Generator().manual_seed(0))
    assert (levels[~is_ctx] == 1.0).all() and (levels[is_ctx] <= 0.1).all()
    plain = DenoiseObjective(model, TrainConfig()).levels(64, 4, torch.Generator().manual_seed(0))
    assert (plain[0][~plain[1]] < 1.0).any()


def test_pixel_error_weighs_the_pixels_that_moved_and_their_band():
    """A one-pixel "sprite" moves from column 2 (the last frame before the chunk) to column 4;
    the clean estimate draws it at column 3. With a stand-in decoder that shows the first three
    latent channels as the frame, the error is exact: two wrong pixels, each 1 in each of 3
    channels, inside the 5 x 7 band around what moved, weighted 1 + salience."""
    obj = DenoiseObjective(WorldModel(preset("tiny")), TrainConfig(salience=8.0))
    obj._decode = lambda z: z[:, :, :3]  # (B, Tl, C, h, w) -> (B, Tl, 3, h, w)
    z = torch.zeros(1, 2, 1, 3, 8, 8)  # (B, N, Tl, C, h, w)
    z[0, 0, 0, :, 4, 2] = 1.0  # before the chunk
    z[0, 1, 0, :, 4, 4] = 1.0  # the truth
    clean = torch.zeros(1, 1, 3, 8, 8)
    clean[0, 0, :, 4, 3] = 1.0  # one pixel short
    x_last = torch.randn(1, 1, 3, 8, 8)
    levels = torch.tensor([[0.0, 1.0]])
    got = obj.pixel_error(x_last, x_last - clean, levels, z)  # x0 = x_t - 1 * v = clean
    band = 5 * 7  # rows 2-6, columns 0-6: both positions widened by 2 px
    expected = 2 * 3 * (1 + 8.0) / ((64 + 8.0 * band) * 3)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # drawn in place: no error, but for the rounding of x_t - (x_t - z) with a random x_t
    in_place = obj.pixel_error(x_last, x_last - z[:, 1], levels, z).item()
    assert in_place == pytest.approx(0.0, abs=1e-12)


def test_the_pixel_term_is_added_with_its_weight_and_trains_only_the_denoiser():
    model = WorldModel(preset("tiny"))
    model.codec.requires_grad_(False)  # as in training: the codec is frozen before the denoiser
    cfg = model.cfg
    b, n = 2, cfg.history_chunks + 2
    side = cfg.codec.frame_size // cfg.codec.spatial
    z = torch.randn(b, n, cfg.latent_frames, cfg.codec.latent_channels, side, side)
    actions = torch.randint(0, len(cfg.actions), (b, n, cfg.chunk_frames))
    captions: list[str | None] = ["a red ball"] * (b * n)
    losses, terms = [], []
    for weight in (0.0, 2.5):
        obj = DenoiseObjective(model, TrainConfig(pixel_loss=weight))
        levels, is_ctx = obj.levels(b, n, torch.Generator().manual_seed(1))
        if weight:
            inner = obj.pixel_error
            obj.pixel_error = lambda *a, f=inner: terms.append(f(*a)) or terms[-1]
        model.zero_grad(set_to_none=True)
        loss = obj(z, actions, captions, levels, is_ctx, torch.Generator().manual_seed(2))
        loss.backward()
        losses.append(loss.item())
    assert terms[0].item() > 0
    assert losses[1] == pytest.approx(losses[0] + 2.5 * terms[0].item(), rel=1e-5)
    assert all(p.grad is None for p in model.codec.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.denoiser.parameters())
