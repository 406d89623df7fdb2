"""The dynamics prior: what it predicts untrained, how the sampler starts chunks from it, and
that a world with it keeps the invariants (cache on = cache off, snapshot then restore)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from sdk import Session
from world.core.checkpoint import load_checkpoint, save_checkpoint
from world.core.config import ModelConfig, PriorConfig, preset
from world.core.model import WorldModel
from world.core.prior import DynamicsPrior
from world.core.sampler import PipelinedSampler


def test_an_untrained_prior_predicts_that_nothing_moves_and_unrolls_frame_by_frame():
    cfg = preset("small").replace(prior=PriorConfig(width=16, blocks=1))
    torch.manual_seed(0)
    prior = DynamicsPrior(cfg)
    last = torch.randn(3, 2, 16, 8, 8)
    actions = torch.tensor([[1, 1, 2, 3], [0, 0, 0, 0], [5, 4, 4, 4]])
    assert torch.equal(prior(last, actions), last[:, 1:].expand(-1, 4, -1, -1, -1))
    torch.nn.init.normal_(prior.trunk.out.weight, 0, 0.1)
    z2, z1, frames = last[:, 0], last[:, 1], []
    for j in range(4):  # each frame from the two before it, its own prediction fed back
        z2, z1 = z1, prior.step(z2, z1, actions[:, j : j + 1])
        frames.append(z1)
    assert torch.equal(prior(last, actions), torch.stack(frames, 1))
    other = actions.clone()
    other[:, 2] = (other[:, 2] + 1) % 6
    moved = prior(last, other)
    assert torch.equal(moved[:, :2], prior(last, actions)[:, :2])  # causal over the chunk
    assert not torch.equal(moved[:, 2], prior(last, actions)[:, 2])


def test_bad_settings_are_refused_with_the_fix(tiny_primed_model):
    cfg = preset("tiny")
    with pytest.raises(ValueError, match="multiple of 8"):
        cfg.replace(prior=PriorConfig(width=12))
    with pytest.raises(ValueError, match=r"prior_level=0.5: give a level in \(0, 1\) for a model"):
        cfg.replace(sampler=dataclasses.replace(cfg.sampler, prior_level=0.5))
    with pytest.raises(ValueError, match="prior_level=1"):
        cfg.replace(
            prior=PriorConfig(width=8), sampler=dataclasses.replace(cfg.sampler, prior_level=1.0)
        )
    with pytest.raises(ValueError, match="chunkworld train-prior"):
        PipelinedSampler(WorldModel(cfg), prior_level=0.3)
    assert ModelConfig.from_dict(tiny_primed_model.cfg.to_dict()) == tiny_primed_model.cfg


class _Still(torch.nn.Module):
    """A denoiser that outputs zero velocity: a chunk leaves the sampler as it entered."""

    def forward(self, x, *args, **kw):
        return torch.zeros_like(x)


class _Guess(torch.nn.Module):
    """A prior that guesses one fixed chunk."""

    def __init__(self, guess: torch.Tensor) -> None:
        super().__init__()
        self.guess = guess

    def forward(self, last, actions):
        return self.guess


def test_an_unprompted_chunk_starts_from_the_guess_noised_to_the_level(
    tiny_primed_model, monkeypatch
):
    """With the denoiser standing still the emitted chunk is its start: the same noise draw, at
    level 1 without the prior, mixed with the prior's guess at ``prior_level`` with it."""
    model = copy.deepcopy(tiny_primed_model)  # its parts are patched: the fixture is shared
    guess = torch.full((1, model.cfg.latent_frames, 4, 4, 4), 2.0)
    monkeypatch.setattr(model, "denoiser", _Still())
    monkeypatch.setattr(model, "prior", _Guess(guess))
    history = torch.randn(1, model.cfg.latent_frames, 4, 4, 4)
    out = {}
    for level in (0.0, 0.4):
        sampler = PipelinedSampler(model, prior_level=level, use_cache=False)  # no cache: no net
        state = sampler.new_state(seed=3)
        sampler.add_history(state, history)
        sampler.add_history(state, history)
        text = model.encode_text([None])
        tick = sampler.tick(state, torch.tensor([[1, 2]]), text)
        assert tick.trace[0][0][1] == pytest.approx(level or 1.0)  # the level it started from
        out[level] = tick.latents
        prompted = sampler.tick(state, torch.tensor([[1, 2]]), text, prompted=True)
        assert prompted.trace[0][0][1] == 1.0  # an event asked for starts from pure noise
    torch.testing.assert_close(out[0.4], 0.6 * guess + 0.4 * out[0.0])


def test_without_a_clean_chunk_before_it_a_chunk_starts_from_noise(tiny_primed_model):
    model = tiny_primed_model
    sampler = PipelinedSampler(model)
    state = sampler.new_state(seed=1)
    first = sampler.tick(state, torch.tensor([[0, 0]]), model.encode_text(["a room"]))
    assert first.trace[-1][0][1] < 1.0 and first.trace[0][0][1] == 1.0  # a text start
    # the tiny model's chunk is one latent frame: the prior needs two chunks held
    second = sampler.tick(state, torch.tensor([[0, 0]]), model.encode_text([None]))
    assert second.trace[0][0][1] == 1.0
    third = sampler.tick(state, torch.tensor([[0, 0]]), model.encode_text([None]))
    assert third.trace[0][0][1] == pytest.approx(0.4)


def test_with_a_prior_the_cache_equals_recompute(tiny_primed_model):
    model = tiny_primed_model
    outs = []
    for use_cache in (True, False):
        sampler = PipelinedSampler(model, use_cache=use_cache)
        state = sampler.new_state(seed=3)
        text = model.encode_text(["night"])
        a = torch.tensor([[1, 3]])
        outs.append(torch.stack([sampler.tick(state, a, text).latents for _ in range(6)]))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-4)


def test_snapshot_then_restore_replays_identical_frames_with_a_prior(tiny_primed_model, tmp_path):
    model = tiny_primed_model
    save_checkpoint(model, tmp_path / "primed")
    reloaded, _ = load_checkpoint(tmp_path / "primed")
    for name, value in model.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[name]), name
    with Session.load(str(tmp_path / "primed"), seed=5, precision="fp32") as s:
        s.reset(prompt="day")
        for a in ["up", "up", "right"]:
            s.step(a)
        snap = s.snapshot()
        first = [s.step(a).frames for a in ["left", "left", None, "down"]]
        s.restore(snap)
        again = [s.step(a).frames for a in ["left", "left", None, "down"]]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_the_prior_level_is_a_session_setting_like_steps(tiny_primed_model):
    """None is the model's level (0.4 here), 0 starts every chunk from pure noise, as the same
    model with a config level of 0 does, and a level the model cannot take is an ArgumentError."""
    from sdk.errors import ArgumentError

    def frames(model, **options):
        with Session.from_model(model, seed=3, precision="fp32", **options) as s:
            out = [s.reset(prompt="day").frames] + [s.step(a).frames for a in ("up", "left")]
            return s.info.prior_level, np.stack(out)

    level, own = frames(tiny_primed_model)
    assert level == 0.4
    level, off = frames(tiny_primed_model, prior_level=0.0)
    assert level == 0.0 and not np.array_equal(own, off)
    unprimed = copy.deepcopy(tiny_primed_model)
    unprimed.cfg = unprimed.cfg.replace(
        sampler=dataclasses.replace(unprimed.cfg.sampler, prior_level=0.0)
    )
    assert np.array_equal(frames(unprimed)[1], off)
    assert frames(tiny_primed_model, prior_level=0.4)[1].tobytes() == own.tobytes()
    for bad, message in [(1.5, "give a level in"), ("0.2", "must be a float or None")]:
        with pytest.raises(ArgumentError, match=message):
            Session.from_model(tiny_primed_model, prior_level=bad)
    with pytest.raises(ArgumentError, match="chunkworld train-prior adds one"):
        Session.load("tiny", prior_level=0.3)
