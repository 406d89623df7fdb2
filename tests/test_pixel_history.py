"""Pixel history: with ``pixel_history`` a generated chunk enters the cache as the codec's
encoding of its shown frames; everything else about a session (its first chunk, snapshots, the
cache-free path, batching, play logs, the self-rollout training feeds) holds as without."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from sdk import Session
from sdk.errors import ArgumentError
from sdk.play.log import ActionLog, LogError, check_log_fits
from world.core.model import WorldModel
from world.core.sampler import PipelinedSampler
from world.train.rollout import generate_after


def _with(tiny: WorldModel, **sampler: object) -> WorldModel:
    cfg = tiny.cfg
    model = WorldModel(cfg.replace(sampler=dataclasses.replace(cfg.sampler, **sampler)))
    model.load_state_dict(tiny.state_dict())
    return model.eval()


def _ticks(sampler: PipelinedSampler, n: int, seed: int = 3) -> list:
    model = sampler.model
    state = sampler.new_state(seed=seed)
    text = model.encode_text(["night"])
    acts = [torch.tensor([[a, a]]) for a in (4, 3, 1, 2, 4, 0)]
    return [sampler.tick(state, acts[k % len(acts)], text) for k in range(n)], state


def test_the_cache_keeps_the_encoding_of_the_frames_shown(tiny_model: WorldModel) -> None:
    model = _with(tiny_model, context_level=0.0)  # the cache's inputs are the clean latents
    on = PipelinedSampler(model, steps=2, in_flight=1, pixel_history=True)
    results, state = _ticks(on, 3)
    codec = model.codec
    for r in results:
        assert r.frames is not None and r.history is not None
        assert r.frames.dtype == torch.uint8
        assert torch.equal(r.frames, on.decode(r.latents))  # the frames of the emitted chunk
        assert torch.equal(r.history, codec.encode(r.frames))
        assert not torch.equal(r.history, r.latents)  # the round trip is not the identity
    slot = state.cache.slot_of(results[-1].chunk)
    assert torch.equal(state.context_inputs[slot], results[-1].history)

    off = PipelinedSampler(model, steps=2, in_flight=1)
    assert off.pixel_history is False  # the config's default
    results, state = _ticks(off, 3)
    assert results[-1].frames is None and results[-1].history is None
    slot = state.cache.slot_of(results[-1].chunk)
    assert torch.equal(state.context_inputs[slot], results[-1].latents)


def test_the_config_sets_it_and_the_argument_overrides(tiny_model: WorldModel) -> None:
    model = _with(tiny_model, pixel_history=True)
    assert PipelinedSampler(model).pixel_history is True
    assert PipelinedSampler(model, pixel_history=False).pixel_history is False
    with Session.from_model(model) as s:
        assert s.info.pixel_history is True


def test_only_the_chunks_after_the_first_change(tiny_model: WorldModel) -> None:
    """The first chunk is made before any generated chunk is cached; later ones see the
    history through pixels, which on random weights is far from the latents."""
    frames = {}
    for flag in (False, True):
        with Session.from_model(tiny_model, seed=5, pixel_history=flag) as s:
            frames[flag] = [s.reset(prompt="two balls").frames] + [
                s.step(a).frames for a in ("right", "left", "up", "down")
            ]
    assert np.array_equal(frames[False][0], frames[True][0])
    assert any(not np.array_equal(a, b) for a, b in zip(frames[False], frames[True], strict=True))


def test_cache_on_equals_cache_off(tiny_model: WorldModel) -> None:
    outs = []
    for use_cache in (True, False):
        sampler = PipelinedSampler(
            tiny_model, use_cache=use_cache, in_flight=2, steps=2, pixel_history=True
        )
        results, _ = _ticks(sampler, 6)
        outs.append(torch.stack([r.frames for r in results]).float())
    diff = (outs[0] - outs[1]).abs()  # a latent 1e-6 apart may round a pixel one level apart
    assert diff.max() <= 1 and (diff > 0).float().mean() <= 1e-3


def test_snapshot_then_restore_gives_the_same_frames(tiny_model: WorldModel) -> None:
    with Session.from_model(tiny_model, seed=2, pixel_history=True) as s:
        s.reset(prompt="night")
        s.step("right")
        snap = s.snapshot()
        first = [s.step(a).frames for a in ("left", "up", "fire")]
        s.restore(snap)
        again = [s.step(a).frames for a in ("left", "up", "fire")]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    with Session.from_model(tiny_model, seed=2) as plain:  # the other setting takes it too
        plain.restore(snap)
        assert plain.step("left").frames.shape == first[0].shape


@pytest.mark.parametrize("bad", ["yes", 1, 0.0])
def test_a_bad_value_is_refused_with_how_to_fix(tiny_model: WorldModel, bad: object) -> None:
    with pytest.raises(ArgumentError, match="pixel_history must be True, False or None"):
        Session.from_model(tiny_model, pixel_history=bad)  # type: ignore[arg-type]


def test_play_logs_record_it_and_replay_needs_it(tiny_model: WorldModel, tmp_path: Path) -> None:
    with Session.from_model(tiny_model, pixel_history=True) as s:
        log = ActionLog.for_session(s)
    assert log.pixel_history is True
    path = log.save(tmp_path / "run.json")
    assert ActionLog.load(path).pixel_history is True
    with Session.from_model(tiny_model) as plain:
        with pytest.raises(
            LogError,
            match="pixel_history=True, palette=False; this session has .*pixel_history=False",
        ):
            check_log_fits(plain, ActionLog.load(path))
    doc = path.read_text().replace('"pixel_history": true,', "")  # a log from before the option
    path.write_text(doc)
    assert ActionLog.load(path).pixel_history is False
    path.write_text(doc.replace('"prior_level"', '"pixel_history": "on", "prior_level"'))
    with pytest.raises(LogError, match="pixel_history"):
        ActionLog.load(path)


def test_self_rollout_feeds_what_the_cache_keeps(tiny_model: WorldModel) -> None:
    """Training's generated context is the history play caches: with pixel history, the
    encoding of the decoded chunk."""
    model = _with(tiny_model, pixel_history=True)
    cfg = model.cfg
    z = torch.randn(2, cfg.history_chunks, cfg.latent_frames, cfg.codec.latent_channels,
                    *cfg.codec.grid)  # fmt: skip
    hist_actions = torch.zeros(2, cfg.history_chunks, cfg.chunk_frames, dtype=torch.long)
    actions = torch.randint(0, len(cfg.actions), (2, 3, cfg.chunk_frames))
    caps: list[list[str | None]] = [[None] * 3, ["night"] * 3]
    kept = generate_after(model, z, hist_actions, actions, caps, seed=7, as_history=True)
    made = generate_after(model, z, hist_actions, actions, caps, seed=7)
    codec = model.codec
    want = torch.stack([codec.encode(codec.decode(made[:, j])) for j in range(3)], dim=1)
    assert torch.equal(kept, want)
