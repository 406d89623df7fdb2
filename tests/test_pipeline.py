"""The one training recipe, end to end on the tiny preset: one call from nothing to a model that
loads and plays, a model card and a scorecard beside it; the same call again resumes (nothing is
redone), and a run directory refuses other settings."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from sdk import Session
from sdk.train import evaluate
from world.core.palette import load_palette
from world.train.card import write_card
from world.train.pipeline import RecipeConfig, make_world


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe") / "run"
    rc = RecipeConfig(out=str(out), preset="tiny", minutes=0.6, seed=1)
    model = make_world(rc, lambda m, o: evaluate(m, o, quick=True))
    return rc, model


def test_recipe_makes_a_model_that_plays(made):
    rc, model = made
    with Session.load(str(model), seed=3) as s:
        first = s.reset(prompt="night, two balls")
        chunk = s.step("right")
    assert first.frames.dtype == np.uint8 and chunk.frames.shape == first.frames.shape
    plan = json.loads((model.parent / "plan.json").read_text())
    assert plan["done"] == ["data", "denoiser", "prior", "openings", "eval"]
    assert (model / "openings.png").exists() and (model / "openings.json").exists()
    palette = load_palette(model)  # the arcade is drawn from 15 colours
    assert palette is not None and len(palette.colours) <= 15
    with Session.load(str(model)) as s:
        assert s.info.palette is True
    assert set(plan["steps"]) == {"codec", "denoiser", "prior"}
    card = (model / "MODEL_CARD.md").read_text()
    assert "chunkworld train" in card and "--preset tiny" in card and "| following |" in card
    codec, denoiser = plan["steps"]["codec"], plan["steps"]["denoiser"]
    assert "| codec, then denoiser | " in card and f"| {codec}, {denoiser} |" in card
    lines = json.loads((model.parent / "scorecard.json").read_text())["lines"]
    assert {"following", "balls_mean16", "long_wall_kept", "text_start_player"} <= set(lines)
    assert (model.parent / "long_rollout.png").exists()


def test_the_same_command_resumes_and_redoes_nothing(made, monkeypatch):
    rc, model = made
    before = (model / "model.safetensors").read_bytes()
    card = (model / "MODEL_CARD.md").read_text()
    plan = json.loads((model.parent / "plan.json").read_text())
    assert f"finished {plan['finished']} UTC." in card

    def never(m, o):
        raise AssertionError("the evaluation ran again")

    monkeypatch.setattr("time.gmtime", lambda *_: time.struct_time((2031, 1, 2, 3, 4, 5, 3, 2, 0)))
    assert make_world(rc, never) == model  # the card is written again, a year later
    assert (model / "model.safetensors").read_bytes() == before
    assert json.loads((model.parent / "plan.json").read_text()) == plan
    assert (model / "MODEL_CARD.md").read_text() == card  # it says when the run finished


def test_a_run_refuses_other_settings(made):
    rc, _ = made
    with pytest.raises(ValueError, match="same settings"):
        make_world(RecipeConfig(out=rc.out, preset="tiny", minutes=0.6, seed=2))


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(game="chess"), "built-in game"),
        (dict(preset="huge"), "recipe knows"),
        (dict(minutes=0), "positive budget"),
    ],
)
def test_bad_settings_say_how_to_fix(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        make_world(RecipeConfig(**{"out": str(tmp_path / "r"), "preset": "tiny", **bad}))


def test_a_stage_is_charged_while_it_runs(tmp_path, monkeypatch):
    import time

    from world.train import pipeline

    monkeypatch.setattr(pipeline, "CHARGE_SECONDS", 0.02)
    plan = pipeline.Plan(tmp_path / "run", RecipeConfig(out=str(tmp_path / "run")))
    with plan.clock("denoiser"):
        time.sleep(0.2)
        on_disk = json.loads(plan.path.read_text())["seconds"]["denoiser"]
        assert on_disk > 0.05  # a run killed here would still have most of its time recorded
    total = json.loads(plan.path.read_text())["seconds"]["denoiser"]
    assert 0.2 <= total < 1.0


@pytest.mark.parametrize("charge_every", [30.0, 0.02])  # charged at the end only, or as it runs
def test_the_time_spent_counts_a_running_stage_once(tmp_path, monkeypatch, charge_every):
    """A stage is planned from what is left of the budget: the seconds spent so far, charged
    or not yet, each counted once (the denoiser's plan used to count its codec and probe twice,
    and the recipe finished minutes under its budget)."""
    from world.train import pipeline

    monkeypatch.setattr(pipeline, "CHARGE_SECONDS", charge_every)
    plan = pipeline.Plan(tmp_path / "run", RecipeConfig(out=str(tmp_path / "run")))
    plan.charge("data", 5.0)  # an earlier stage
    start = time.time()
    with plan.clock("denoiser"):
        time.sleep(0.3)
        inside = plan.elapsed() - 5.0
        wall = time.time() - start
        assert wall - 0.05 <= inside <= wall + 0.01
    assert plan.elapsed() == pytest.approx(plan.spent()) == pytest.approx(5.0 + wall, abs=0.05)


def test_a_run_recorded_before_a_setting_existed_resumes_at_its_default(tmp_path):
    from world.train.pipeline import Plan

    rc = RecipeConfig(out=str(tmp_path / "run"))
    Plan(tmp_path / "run", rc)
    path = tmp_path / "run" / "plan.json"
    doc = json.loads(path.read_text())
    del doc["recipe"]["init"]  # as written by a recipe that had no --init yet
    path.write_text(json.dumps(doc))
    assert Plan(tmp_path / "run", rc).doc["recipe"] == doc["recipe"] | {"init": ""}
    with pytest.raises(ValueError, match="same settings"):
        Plan(tmp_path / "run", RecipeConfig(out=rc.out, init="default"))


def test_a_card_from_recordings_names_them_not_a_game(tmp_path):
    rc = {**asdict(RecipeConfig()), "data": "recs/run1", "out": str(tmp_path), "minutes": 40.0}
    doc = {"recipe": rc, "steps": {}, "seconds": {"data": 1.0}, "done": ["data"]}
    (tmp_path / "model").mkdir()
    card = write_card(tmp_path / "model", doc, tmp_path).read_text()
    assert card.startswith("# world of the recordings in recs/run1 (small preset)")
    assert "chunkworld train --data recs/run1 --out" in card and "--game" not in card


def test_a_fine_tune_goes_on_training_the_codec_it_starts_from(made, tmp_path):
    from safetensors.torch import load_file

    from world.core.checkpoint import read_config
    from world.core.config import preset
    from world.core.model import WorldModel

    _, source = made
    rc = RecipeConfig(out=str(tmp_path / "tuned"), preset="tiny", minutes=0.3, seed=2)
    tuned = make_world(RecipeConfig(**{**asdict(rc), "init": str(source)}))
    plan = json.loads((tmp_path / "tuned" / "plan.json").read_text())
    assert plan["steps"]["codec"] > 0  # a variant's new colours need a codec that saw them
    # the denoiser it goes on from knows the source's latent scale
    scale = read_config(tuned)[0].codec.latent_scale
    assert scale == read_config(source)[0].codec.latent_scale

    def codec(path) -> dict:
        t = load_file(str(path / "model.safetensors"))
        return {n: v.float() for n, v in t.items() if n.startswith("codec.")}

    before, after = codec(source), codec(tuned)
    fresh = {"codec." + n: v for n, v in WorldModel(preset("tiny")).codec.state_dict().items()}
    moved = sum(float((after[n] - before[n]).norm()) for n in before)
    assert moved > 0  # trained on the new data
    # from the source's codec, not from a fresh one: it stays far closer to where it started
    assert moved < 0.5 * sum(float((fresh[n] - before[n]).norm()) for n in before)


def test_the_codec_probe_times_the_codec_the_run_will_train(made, tmp_path, monkeypatch):
    """Under --init the run trains the source's codec, so its pace is timed on that codec, not
    the preset's (the shipped default's decoder has 9 more blocks: 3x the time a step)."""
    import dataclasses

    import world.train.codec
    from world.core.checkpoint import save_checkpoint
    from world.core.config import preset
    from world.core.model import WorldModel
    from world.train.pipeline import _time_codec

    rc, _ = made
    cfg = preset("tiny")
    grown = cfg.replace(codec=dataclasses.replace(cfg.codec, decoder_blocks=2))
    save_checkpoint(WorldModel(grown), tmp_path / "source")
    timed = []
    real = world.train.codec.codec_loss
    monkeypatch.setattr(world.train.codec, "codec_loss", lambda c, f: timed.append(c) or real(c, f))
    base = dict(data=str(Path(rc.out) / "data"), out=str(tmp_path / "run"), preset="tiny")
    _time_codec({**base, "init_from": ""}, 1)
    _time_codec({**base, "init_from": str(tmp_path / "source")}, 1)
    assert [len(c.decoder.refine) for c in timed] == [cfg.codec.decoder_blocks, 2]
