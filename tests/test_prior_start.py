"""Training the denoiser from the prior's guess, as play starts a chunk (``--prior-start``): the
guess lands where play puts it, the target's one step lands on the truth, and a run fine-tuned
from a model with a prior keeps it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from world.core.checkpoint import load_checkpoint, save_checkpoint
from world.core.model import WorldModel
from world.core.schedule import add_noise, training_levels
from world.train.denoiser import DenoiseObjective, prior_starts
from world.train.stages import TrainConfig, run


def _window(model: WorldModel, b: int = 16, seed: int = 0):
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    n, tl, c = cfg.history_chunks + 2, cfg.latent_frames, cfg.codec.latent_channels
    z = torch.randn(b, n, tl, c, *cfg.codec.grid, generator=g)
    actions = torch.randint(0, len(cfg.actions), (b, n, cfg.chunk_frames), generator=g)
    levels, is_ctx = training_levels(b, n, g, max_context=cfg.history_chunks)
    return z, actions, levels, is_ctx


def test_the_first_noisy_chunk_starts_from_the_guess_play_would_make(tiny_primed_model):
    model = tiny_primed_model
    z, actions, levels, is_ctx = _window(model)
    gen = torch.Generator().manual_seed(5)
    out, guess, from_guess = prior_starts(model, z, actions, levels, is_ctx, 1.0, gen)
    first = is_ctx.sum(1)
    level = model.cfg.sampler.prior_level
    redo = torch.Generator().manual_seed(5)
    torch.rand(len(z), generator=redo)  # the draw of which windows start from a guess
    tl = z.shape[2]
    rows = [i for i in range(len(z)) if first[i] * tl >= 2 and first[i] < z.shape[1]]
    assert rows and from_guess.sum() == len(rows)
    flat = z.flatten(1, 2)
    last = torch.stack([flat[i, first[i] * tl - 2 : first[i] * tl] for i in rows])
    last = add_noise(last, torch.randn(last.shape, generator=redo), model.cfg.sampler.context_level)
    with torch.no_grad():
        want = model.prior(last, actions[rows, first[rows]])
    assert torch.equal(guess[rows, first[rows]], want)
    for i in range(len(z)):
        n = z.shape[1]
        if i not in rows:
            assert torch.equal(out[i], levels[i]) and not from_guess[i].any()
            continue
        assert from_guess[i].tolist() == [j == first[i] for j in range(n)]
        assert out[i, first[i]] == pytest.approx(level)
        assert all(out[i, j] >= level for j in range(first[i], n))  # never below the start
        assert torch.equal(out[i, : first[i]], levels[i, : first[i]])  # the history as it was
    none, _, mask = prior_starts(model, z, actions, levels, is_ctx, 0.0, gen)
    assert torch.equal(none, levels) and not mask.any()


def test_a_guess_that_is_the_truth_is_an_ordinary_chunk_at_that_level(tiny_primed_model):
    """From the guess x_t = (1 - L) g + L e, the target v with x_t - L v = z; were g = z, that
    is e - z, the flow target at level L: the same loss as without the guess."""
    model = tiny_primed_model
    z, actions, levels, is_ctx = _window(model, seed=1)
    gen = torch.Generator().manual_seed(2)
    levels, _, from_guess = prior_starts(model, z, actions, levels, is_ctx, 1.0, gen)
    assert from_guess.any()
    obj = DenoiseObjective(model, TrainConfig(salience=0.0))
    noise = torch.randn(z.shape, generator=gen)
    caps = [None] * z.shape[0] * z.shape[1]
    with torch.no_grad():
        plain = obj(z, actions, caps, levels, is_ctx, noise)
        truth = obj(z, actions, caps, levels, is_ctx, noise, z.clone(), from_guess)
        wrong = obj(z, actions, caps, levels, is_ctx, noise, z + 1.0, from_guess)
    assert torch.allclose(truth, plain, rtol=1e-5)
    assert not torch.allclose(wrong, plain, rtol=1e-3)


def test_a_fine_tuned_run_keeps_and_uses_its_sources_prior(tiny_data, tmp_path, tiny_primed_model):
    source = tmp_path / "source"
    save_checkpoint(tiny_primed_model, source)
    out = tmp_path / "run"
    tc = TrainConfig(
        data=str(tiny_data),
        out=str(out),
        preset="tiny",
        init_from=str(source),
        codec_steps=0,
        steps=2,
        batch=2,
        eval_every=0,
        save_every=0,
        warmup=1,
        prior_start=1.0,
    )
    run(tc)
    model, doc = load_checkpoint(out / "model")
    assert model.cfg.prior == tiny_primed_model.cfg.prior
    assert model.cfg.sampler.prior_level == tiny_primed_model.cfg.sampler.prior_level
    assert model.prior is not None and tiny_primed_model.prior is not None
    for a, b in zip(model.prior.parameters(), tiny_primed_model.prior.parameters(), strict=True):
        assert torch.equal(a, b)  # carried, not trained
    assert doc["train"]["prior_start"] == 1.0


def test_a_prior_start_without_a_prior_is_refused_with_the_fix(tiny_data, tmp_path):
    tc = TrainConfig(
        data=str(tiny_data),
        out=str(tmp_path / "r"),
        preset="tiny",
        codec_steps=1,
        codec_batch=2,
        steps=1,
        batch=2,
        eval_every=0,
        save_every=0,
        prior_start=0.5,
    )
    with pytest.raises(
        ValueError, match="--prior-start 0.5: give a share .* with a dynamics prior"
    ):
        run(tc)
    bad = dataclasses.replace(tc, prior_start=1.5, out=str(tmp_path / "r2"))
    with pytest.raises(ValueError, match="--prior-start 1.5"):
        run(bad)
