"""The clean-latent head (``x0_from``): the velocity it gives near pure noise, the cache
invariant with it, the least-squares fit that starts it on a trained model, and the training
options that grow and resume it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_core import _assert_cache_equals_masked, _forward, _inputs
from test_init_from import _assert_same_function, _grown, _resumed, _source
from test_train import _config

from world.core.checkpoint import load_checkpoint
from world.core.config import ModelConfig, preset
from world.core.cpus import bf16_enabled
from world.core.model import WorldModel
from world.core.schedule import predict_clean
from world.train.denoiser import DenoiseObjective, held_out_clips
from world.train.recipe import run
from world.train.trainkit import TrainConfig, load_arrays
from world.train.x0_head import fit_x0_head, readout_rows, ridge


def _x0_model(x0_from: float) -> WorldModel:
    cfg = preset("tiny")
    torch.manual_seed(0)
    model = WorldModel(cfg.replace(denoiser=dataclasses.replace(cfg.denoiser, x0_from=x0_from)))
    with torch.no_grad():
        for name, p in model.denoiser.named_parameters():
            if name.endswith(("mod.weight", "out.weight", "out_x0.weight", "out_mod.weight")):
                p.normal_(0, 0.05)
    return model.eval()


def test_ridge_recovers_a_planted_readout_and_ignores_rows_of_weight_zero():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=g)
    a, b = torch.randn(3, 6, generator=g), torch.randn(3, generator=g)
    y = x @ a.T + b
    w = torch.rand(300, generator=g) + 0.5
    y[:60], w[:60] = torch.randn(60, 3, generator=g) * 10, 0.0  # rows that must not count
    got_a, got_b = ridge(x, y, w, lam=0.0)
    assert torch.allclose(got_a, a, atol=1e-4) and torch.allclose(got_b, b, atol=1e-4)
    shrunk, _ = ridge(x, y, w, lam=1.0)  # the penalty pulls the readout toward zero
    assert shrunk.norm() < got_a.norm()


def test_at_levels_from_x0_from_the_velocity_lands_on_the_heads_clean_latent():
    model = _x0_model(0.9)
    c = torch.randn(model.denoiser.patch_dim)
    with torch.no_grad():
        model.denoiser.out_x0.weight.zero_()
        model.denoiser.out_x0.bias.copy_(c)
    x, actions, text, tmask = _inputs(model, 3)
    levels = torch.tensor([[0.05, 0.95, 0.5]])  # history, near noise, below x0_from
    v = _forward(model, x, actions, text, tmask, n_context=1, levels=levels)
    clean = predict_clean(x[:, 1], v[:, 1], torch.tensor(0.95))
    planted = c.view(-1, 1, 1).expand_as(clean[0, 0])  # patch 1: one token per latent cell
    assert torch.allclose(clean, planted.expand_as(clean), atol=1e-5)
    # below x0_from, and for history, the velocity head's output, as a model without the head
    plain = WorldModel(preset("tiny")).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    ref = _forward(plain, x, actions, text, tmask, n_context=1, levels=levels)
    assert torch.equal(v[:, [0, 2]], ref[:, [0, 2]])
    assert not torch.allclose(v[:, 1], ref[:, 1])


@pytest.mark.parametrize("history,seed", [(1, 0), (3, 7)])
def test_cache_equals_single_masked_forward_with_the_clean_latent_head(history, seed):
    _assert_cache_equals_masked(_x0_model(0.5), history, seed)  # its levels 0.7: the x0 path


@pytest.mark.parametrize("bad", [0.3, 1.5, -1.0])
def test_x0_from_outside_its_range_is_refused_with_the_range(bad):
    cfg = preset("tiny")
    with pytest.raises(ValueError, match=r"x0_from=.*\[0.5, 1\].*or 0 for never"):
        ModelConfig(denoiser=dataclasses.replace(cfg.denoiser, x0_from=bad))


def test_the_fit_reads_the_clean_latent_better_than_a_blank_head(tiny_data, tmp_path):
    run(_config(tiny_data, tmp_path / "a", steps=4))
    source, _ = load_checkpoint(tmp_path / "a" / "model")
    cfg = source.cfg.replace(denoiser=dataclasses.replace(source.cfg.denoiser, x0_from=0.9))
    model = WorldModel(cfg)
    model.load_state_dict(source.state_dict(), strict=False)
    latents = np.load(tmp_path / "a" / "latents.npy")
    data = load_arrays(str(tiny_data), cfg)
    tc = TrainConfig(batch=4, pure_noise=0.5)
    report = fit_x0_head(model, latents, data, tc, batches=6, held_out=3)
    head = model.denoiser.out_x0
    # the head is the weighted least-squares readout of the rows of the clips it was fit on
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_enabled(tc.precision)):
        x, y, w, _ = readout_rows(DenoiseObjective(model, tc), latents[:-3], data, tc, 6, tc.seed)
    assert len(x) == report["rows"] > 0
    a, b = ridge(x, y, w)
    assert torch.allclose(head.weight, a, atol=1e-5) and torch.allclose(head.bias, b, atol=1e-5)

    def err(pred):
        return float(((pred - y).pow(2).mean(-1) * w).sum() / w.sum())

    assert err(x @ a.T + b) < err(torch.zeros_like(y))  # it reads more than a blank head
    fitted = head.weight.detach().clone()
    with torch.no_grad():
        head.weight.normal_()
    assert fit_x0_head(model, latents, data, tc, batches=6, held_out=3) == report
    assert torch.equal(head.weight, fitted)  # its seed's answer, whatever the head held before
    # by default it holds out the clips the run does: 1 of these 12 (a tenth, 1 to 16)
    assert [held_out_clips(n) for n in (12, 50, 750)] == [1, 5, 16]
    fit_x0_head(model, latents, data, tc, batches=6)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_enabled(tc.precision)):
        x, y, w, _ = readout_rows(DenoiseObjective(model, tc), latents[:-1], data, tc, 6, tc.seed)
    assert torch.allclose(head.weight, ridge(x, y, w)[0], atol=1e-5)
    with pytest.raises(ValueError, match="held_out=12: give 1 to 11 of 12 clips"):
        fit_x0_head(model, latents, data, tc, batches=6, held_out=12)


def test_a_run_grown_with_the_head_keeps_its_source_below_x0_from_and_resumes_with_it(
    tiny_data, tmp_path
):
    source, init = _source(tmp_path)
    grown = _grown(tiny_data, tmp_path, init, x0_from=0.9)
    assert grown.cfg.denoiser.x0_from == 0.9 and not source.cfg.denoiser.x0_from
    assert grown.denoiser.out_x0.weight.abs().max() > 0  # fitted, not blank
    _assert_same_function(grown, source)  # _forward's levels, 0.05 and 0.7, are below 0.9
    with pytest.raises(ValueError, match=r"--x0-from 0.2: give the level in \[0.5, 1\]"):
        run(_config(tiny_data, tmp_path / "c", x0_from=0.2))
    _resumed(tiny_data, tmp_path, init, "started with --x0-from 0.9.*--x0-from 0.9", x0_from=0.9)
