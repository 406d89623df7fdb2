"""Training a dynamics prior: only the prior is new, the model's config starts chunks from it, a
resumed run ends where an uninterrupted one does, and bad calls say how to fix them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sdk import Session
from world.core.checkpoint import load_checkpoint, save_checkpoint
from world.core.config import preset
from world.core.model import WorldModel
from world.train import prior as tp
from world.train.data import Dataset, DatasetMeta, DatasetWriter


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A tiny untrained model with a record of its own."""
    root = tmp_path_factory.mktemp("prior")
    torch.manual_seed(0)
    save_checkpoint(WorldModel(preset("tiny")), root / "model", {"step": 7, "card": {"n": 1}})
    return root / "model"


def _run(source: Path, data: Path, out: Path, **kw) -> tp.PriorTraining:
    base = dict(
        model=str(source),
        data=str(data),
        out=str(out),
        steps=12,
        batch=8,
        width=8,
        blocks=1,
        level=0.3,
        eval_every=6,
        eval_windows=16,
        save_every=3,
        unroll=1,  # quick; the resume test runs unrolled and sprite-weighted as well
        salience=0.0,
        precision="fp32",
    )
    base.update(kw)
    return tp.PriorTraining(**base)


def test_only_the_prior_is_new_and_the_model_starts_chunks_from_it(source, tiny_data, tmp_path):
    path = tp.train_prior(_run(source, tiny_data, tmp_path / "run", steps=40, lr=3e-3))
    primed, doc = load_checkpoint(path)
    original, _ = load_checkpoint(source)
    before, after = original.state_dict(), primed.state_dict()
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert set(after) - set(before) == {f"prior.{n}" for n in primed.prior.state_dict()}
    assert (primed.cfg.prior.width, primed.cfg.prior.blocks) == (8, 1)
    assert primed.cfg.sampler.prior_level == 0.3
    assert doc["step"] == 7 and doc["card"] == {"n": 1}  # the source's record is kept
    first, last = doc["prior_training"]["held_out"]
    assert (first["step"], last["step"]) == (0, 40)
    assert last["latent_mse"] < first["latent_mse"]  # it learned something of the dynamics
    evals = [
        json.loads(x)
        for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        if '"prior_eval"' in x
    ]
    assert [r["step"] for r in evals] == [0, 6, 12, 18, 24, 30, 36, 40]
    with Session.load(str(path), precision="fp32") as s:
        s.reset(prompt="a room")
        frames = [s.step("right").frames for _ in range(3)]
    assert all(f.shape == (2, 32, 32, 3) for f in frames)


@pytest.mark.parametrize("extra", [{}, {"unroll": 3, "salience": 8.0}, {"unroll": 2, "loss": "l1"}])
def test_a_resumed_run_ends_where_an_uninterrupted_one_does(
    source, tiny_data, tmp_path, monkeypatch, extra
):
    whole = load_checkpoint(tp.train_prior(_run(source, tiny_data, tmp_path / "whole", **extra)))[0]
    save, calls = tp.save_part, {"n": 0}

    def stop_after_two(*args, **kw):  # dies after the save at step 6
        save(*args, **kw)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(tp, "save_part", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        tp.train_prior(_run(source, tiny_data, tmp_path / "cut", **extra))
    monkeypatch.setattr(tp, "save_part", save)
    resumed = load_checkpoint(tp.train_prior(_run(source, tiny_data, tmp_path / "cut", **extra)))[0]
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_keep_prior_starts_from_the_source_models_prior(source, tiny_data, tmp_path):
    first = tp.train_prior(_run(source, tiny_data, tmp_path / "a", steps=6))
    again = tp.train_prior(_run(first, tiny_data, tmp_path / "b", steps=0, keep_prior=True))
    fresh = tp.train_prior(_run(first, tiny_data, tmp_path / "c", steps=0, seed=5))
    a, b, c = (load_checkpoint(p)[0].prior.state_dict() for p in (first, again, fresh))
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not all(torch.equal(a[n], c[n]) for n in a)


def test_the_loss_chosen_is_the_loss_trained(source, tiny_data, tmp_path):
    """The same windows, noise and seed: only the loss differs, so the priors do."""
    mse = tp.train_prior(_run(source, tiny_data, tmp_path / "mse", steps=4, lr=3e-3))
    l1 = tp.train_prior(_run(source, tiny_data, tmp_path / "l1", steps=4, lr=3e-3, loss="l1"))
    again = tp.train_prior(_run(source, tiny_data, tmp_path / "l1b", steps=4, lr=3e-3, loss="l1"))
    a, b, c = (load_checkpoint(p)[0].prior.state_dict() for p in (mse, l1, again))
    assert not all(torch.equal(a[n], b[n]) for n in a)
    assert all(torch.equal(b[n], c[n]) for n in b)
    assert load_checkpoint(l1)[1]["prior_training"]["loss"] == "l1"


def test_bad_calls_say_how_to_fix_them(source, tiny_data, tmp_path):
    with pytest.raises(ValueError, match=r"--loss .huber.: give one of mse, l1"):
        tp.train_prior(_run(source, tiny_data, tmp_path / "l", loss="huber"))
    with pytest.raises(ValueError, match=r"--level 1: give the level .* in \(0, 1\)"):
        tp.train_prior(_run(source, tiny_data, tmp_path / "a", level=1.0))
    with pytest.raises(ValueError, match="multiple of 8"):
        tp.train_prior(_run(source, tiny_data, tmp_path / "b", width=12))
    tp.train_prior(_run(source, tiny_data, tmp_path / "c", steps=3))
    with pytest.raises(ValueError, match="--width or --blocks"):
        tp.train_prior(_run(source, tiny_data, tmp_path / "c", steps=6, width=16))
    np.save(tmp_path / "z.npy", np.zeros((3, 8, 4, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"z.npy: latents of shape \(3, 8, 4, 4, 4\) do not fit"):
        tp.train_prior(_run(source, tiny_data, tmp_path / "d", latents=str(tmp_path / "z.npy")))
    with pytest.raises(SystemExit):  # the command names the flag it does not know
        tp.main(["--stpes", "3"])
    with pytest.raises(SystemExit):  # the flag takes only the losses the trainer knows
        tp.main(["--loss", "huber"])


def test_data_without_the_players_place_are_scored_by_the_latent_error_alone(
    source, tiny_data, tmp_path
):
    """A recording of a game of one's own need not carry the player's place."""
    clips = Dataset(tiny_data).load_all()
    writer = DatasetWriter(tmp_path / "own", DatasetMeta(frame_size=(32, 32), chunk_frames=2))
    for frames, actions, captions in zip(clips.frames, clips.actions, clips.captions, strict=True):
        writer.append(frames, actions, captions)
    path = tp.train_prior(_run(source, tmp_path / "own", tmp_path / "run", steps=3))
    held = load_checkpoint(path)[1]["prior_training"]["held_out"]
    assert [sorted(row) for row in held] == [["latent_mse", "step"]] * 2
