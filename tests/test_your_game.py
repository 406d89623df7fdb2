"""docs/your-game.md's example game (samples/catch_game.py, quoted in the doc byte for byte)
passes the checker and trains end to end with the one recipe on the tiny preset; the model takes
its frame size and its own action names, and plays through Session."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from sdk import Session
from sdk.train import evaluate
from world.games.protocol import validate_game
from world.train.data import Dataset
from world.train.pipeline import RecipeConfig, make_world

ROOT = Path(__file__).resolve().parents[1]
GAME = "samples.catch_game:Catch"


@pytest.fixture(scope="module", autouse=True)
def samples_importable():
    """``samples.catch_game`` imports from the repository root, as from a user's shell there."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT))
        yield


def test_the_doc_quotes_the_tested_example_whole():
    doc = (ROOT / "docs" / "your-game.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    source = (ROOT / "samples" / "catch_game.py").read_text()
    assert source in blocks


def test_the_example_passes_the_checker():
    from samples.catch_game import Catch

    summary = validate_game(Catch())
    assert summary == {
        "actions": ["noop", "left", "right"],
        "frame_size": (32, 32),
        "optional": ["describe", "player", "objects"],
    }


@pytest.fixture(scope="module")
def catch_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("catch") / "run"
    rc = RecipeConfig(game=GAME, out=str(out), preset="tiny", minutes=0.5, seed=0)
    return rc, make_world(rc, lambda m, o: evaluate(m, o, quick=True, game=GAME))


def test_the_example_trains_end_to_end_and_plays(catch_world):
    rc, model = catch_world
    meta = Dataset(Path(rc.out) / "data").meta
    assert meta.actions == ("noop", "left", "right") and meta.frame_size == (32, 32)
    assert meta.generator["name"] == "samples.catch_game.Catch"
    with Session.load(str(model), seed=1) as s:
        assert s.info.actions == ("noop", "left", "right")
        assert (s.info.frame_height, s.info.frame_width) == (32, 32)
        first = s.reset(prompt="a paddle catches a falling ball")
        chunk = s.step("left")
        with pytest.raises(ValueError, match="fire"):
            s.step("fire")  # the arcade's key is not this world's
    assert chunk.frames.shape == first.frames.shape == (s.info.chunk_frames, 32, 32, 3)
    card = json.loads((Path(rc.out) / "scorecard.json").read_text())
    assert set(card["lines"]) == {
        "psnr_tick1",
        "beats_copy_last",
        "following",
        "idle",
        "alternating",
        "long_objects",
    }
    assert len(card["psnr_per_tick"]) == len(card["copy_last_per_tick"]) == 4
    assert set(card["objects_per_100_ticks"]) == {"balls"}
    assert (Path(rc.out) / "long_rollout.png").exists()
    text = (model / "MODEL_CARD.md").read_text()
    assert "--game samples.catch_game:Catch" in text
    assert (
        "Learned from the game samples.catch_game:Catch: 32x32 frames, keys noop, left, right."
        in text
    )
    assert np.isfinite(card["psnr_per_tick"]).all()


def test_chunkworld_eval_scores_any_game(catch_world, tmp_path, capsys):
    from sdk.evaluate import main

    _, model = catch_world
    argv = ["--model", str(model), "--out", str(tmp_path), "--episodes", "1", "--horizon", "2"]
    assert main([*argv, "--long-ticks", "0", "--game", GAME, "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed[:-1]] == [
        "psnr_tick1",
        "beats_copy_last",
        "following",
        "idle",
        "alternating",
    ]
    assert printed[-1].endswith(f"lines met; {tmp_path / 'scorecard.json'}")
    card = json.loads((tmp_path / "scorecard.json").read_text())
    assert card["game"] == "samples.catch_game.Catch" and len(card["psnr_per_tick"]) == 2
    assert main([*argv, "--game", "samples.catch_game:Nope"]) == 2
    assert "has no class 'Nope'" in capsys.readouterr().err


def test_a_broken_game_fails_before_any_work(tmp_path, monkeypatch):
    from samples.catch_game import Catch
    from world.games.protocol import GameError

    class Breaks(Catch):
        def step(self, action):
            if self.ball[1] == 6:
                raise IndexError("ball fell off")
            return super().step(action)

    module = types.ModuleType("bad_games_for_test")
    module.Breaks = Breaks  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bad_games_for_test", module)
    with pytest.raises(GameError, match=r"raised IndexError: ball fell off \(reproduce: reset"):
        make_world(RecipeConfig(game="bad_games_for_test:Breaks", out=str(tmp_path / "b")))
    assert not list(tmp_path.iterdir())  # nothing written


class WideCatch:
    """Catch on a 32x48 screen: frames need not be square."""

    actions = ["noop", "left", "right"]

    def reset(self, seed: int) -> np.ndarray:
        self.rng = np.random.default_rng(seed)
        self.x, self.ball = 24, [int(self.rng.integers(2, 46)), 0]
        return self.render()

    def step(self, action: str) -> np.ndarray:
        self.x = int(np.clip(self.x + {"noop": 0, "left": -2, "right": 2}[action], 4, 44))
        self.ball[1] = (self.ball[1] + 1) % 28
        return self.render()

    def render(self) -> np.ndarray:
        f = np.full((32, 48, 3), 30, np.uint8)
        f[-3:-1, self.x - 4 : self.x + 4] = (255, 220, 0)
        f[self.ball[1] : self.ball[1] + 2, self.ball[0] - 1 : self.ball[0] + 1] = (230, 50, 50)
        return f


def test_a_game_of_wide_frames_trains_and_plays_at_its_own_shape(tmp_path, monkeypatch):
    module = types.ModuleType("wide_catch")
    module.WideCatch = WideCatch  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wide_catch", module)
    rc = RecipeConfig(game="wide_catch:WideCatch", out=str(tmp_path / "run"), preset="tiny",
                      minutes=0.3, seed=0)  # fmt: skip
    model = make_world(rc)
    assert Dataset(tmp_path / "run" / "data").meta.frame_size == (32, 48)
    with Session.load(str(model), seed=1) as s:
        assert (s.info.frame_height, s.info.frame_width) == (32, 48)
        first = s.reset()
        chunk = s.step("right")
        again = s.reset(image=first.frames[-1])  # an image start at the model's shape
        with pytest.raises(ValueError, match="H = 32, W = 48"):
            s.reset(image=np.zeros((48, 32, 3), np.uint8))  # the sides swapped
    assert first.frames.shape == chunk.frames.shape == (s.info.chunk_frames, 32, 48, 3)
    assert again.frames.shape == first.frames.shape
