"""The one training recipe, end to end on the tiny preset: one call from nothing to a model that
loads and plays, a model card and a scorecard beside it; the same call again resumes (nothing is
redone), and a run directory refuses other settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sdk import Session
from sdk.train import evaluate
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
    assert plan["done"] == ["data", "denoiser", "prior", "eval"]
    assert set(plan["steps"]) == {"codec", "denoiser", "prior"}
    card = (model / "MODEL_CARD.md").read_text()
    assert "chunkworld train" in card and "--preset tiny" in card and "| following |" in card
    lines = json.loads((model.parent / "scorecard.json").read_text())["lines"]
    assert {"following", "balls_mean16", "long_wall_kept", "text_start_player"} <= set(lines)
    assert (model.parent / "long_rollout.png").exists()


def test_the_same_command_resumes_and_redoes_nothing(made):
    rc, model = made
    before = (model / "model.safetensors").read_bytes()
    spent = json.loads((model.parent / "plan.json").read_text())["seconds"]

    def never(m, o):
        raise AssertionError("the evaluation ran again")

    assert make_world(rc, never) == model
    assert (model / "model.safetensors").read_bytes() == before
    assert json.loads((model.parent / "plan.json").read_text())["seconds"] == spent


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
