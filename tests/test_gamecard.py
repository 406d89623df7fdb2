"""The scorecard for any game (world/eval/gamecard.py) and the data stage for any game
(world/train/gamedata.py), on fake sessions whose answers are known: a session that is the
true game scores perfectly, one that holds its start frame scores as copy-last does."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from world.eval.gamecard import game_scorecard
from world.train.data import Dataset
from world.train.gamedata import generate_game_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def samples_importable():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT))
        yield


def rainy_catch():
    from samples.catch_game import Catch

    class RainyCatch(Catch):
        prompts = {"rain": ["rain", "it rains"], "dry": ["dry"]}
        held_out_prompts = {"rain": [f"rain please {i}" for i in range(5)]}

        def reset(self, seed):
            self.raining = False
            return super().reset(seed)

        def apply_prompt(self, text):
            want = "rain" in text
            changed = want != self.raining
            self.raining = want
            return (["rain"] if want else ["dry"]) if changed else []

        def render(self):
            f = super().render()
            if self.raining:
                f[::4, ::3] = (90, 90, 250)
            return f

        def describe(self):
            return "rain" if self.raining else "dry"

    return RainyCatch


class TrueSession:
    """The game itself behind the session interface: what a perfect model would draw."""

    def __init__(self, game_cls, f, k):
        self.game, self.f, self.k = game_cls(), f, k

    def reset(self, *, video=None, seed=None, prompt=None, image=None):
        self.game.reset(seed)
        for _ in range(self.k * self.f):
            last = self.game.step(self.game.actions[0])
        assert np.array_equal(last, video[-1])
        self.last = last

    def step(self, action=None, *, prompt=None):
        if prompt is not None:
            self.game.apply_prompt(prompt)
        return SimpleNamespace(frames=np.stack([self.game.step(a) for a in action]))


class HoldSession(TrueSession):
    """Draws its start's last frame forever: copy-last."""

    def step(self, action=None, *, prompt=None):
        return SimpleNamespace(frames=np.stack([self.last for _ in action]))


def test_a_perfect_world_meets_every_line(tmp_path):
    cls = rainy_catch()
    card = game_scorecard(
        TrueSession(cls, 2, 2),
        cls(),
        chunk_frames=2,
        history_chunks=2,
        episodes=2,
        horizon=16,
        long_ticks=200,
        out=tmp_path,
    )
    lines = card["lines"]
    assert set(lines) == {
        "psnr_tick1",
        "beats_copy_last",
        "following",
        "idle",
        "alternating",
        "long_objects",
        "prompts_heldout",
    }
    assert card["psnr_per_tick"] == [60.0] * 16 and len(card["copy_last_per_tick"]) == 16
    for name in ("beats_copy_last", "following", "idle", "alternating", "prompts_heldout"):
        assert lines[name]["value"] == 1.0 and lines[name]["met"] is True
    assert lines["long_objects"] == {"value": 0.0, "bar": 0.5, "met": True, "sense": "max"}
    windows = card["objects_per_100_ticks"]["balls"]
    assert windows["model"] == windows["game"] and len(windows["game"]) == 2
    assert card["prompts_heldout_by_kind"] == {"rain": 1.0}
    assert (tmp_path / "long_rollout.png").exists()
    units = card["units"]  # per rollout or start, for chunkworld compare
    assert units == {
        "following": [1.0, 1.0],
        "idle": [1.0],
        "alternating": [1.0],
        "psnr_tick1": [60.0, 60.0],
    }
    assert card["trials"] == {"episodes": 2, "horizon": 16, "long_ticks": 200}
    json.dumps(card)  # scorecard.json material


def test_copy_last_does_not_beat_itself():
    cls = rainy_catch()
    card = game_scorecard(
        HoldSession(cls, 2, 2),
        cls(),
        chunk_frames=2,
        history_chunks=2,
        episodes=2,
        horizon=8,
        long_ticks=0,
    )
    assert card["psnr_per_tick"] == card["copy_last_per_tick"]
    assert card["lines"]["beats_copy_last"]["value"] == 0.0
    assert card["lines"]["prompts_heldout"]["value"] == 0.0  # it never shows the rain
    assert "long_objects" not in card["lines"]


def test_game_data_uses_describe_prompts_and_policy(tmp_path):
    cls = rainy_catch()

    class Steered(cls):
        def policy(self, rng):
            return "right" if rng.random() < 0.75 else "noop"

    ds = generate_game_dataset(Steered(), tmp_path / "d", 6, 32, 4, seed=3, event_prob=0.5)
    assert (
        ds.meta.actions == ("noop", "left", "right")
        and ds.meta.generator["policy"] == "game.policy"
    )
    clips = list(ds)
    acts = np.concatenate([c.actions for c in clips])
    assert set(np.unique(acts)) == {0, 2} and 0.6 < np.mean(acts == 2) < 0.9
    events = [e for c in clips for e in c.events]
    assert events and all(e["prompt"] in ("rain", "it rains", "dry") for e in events)
    for c in clips:
        for e in c.events:
            assert c.captions[e["chunk"]] == e["prompt"]
    # the same seed writes the same data; the clips replay on the game exactly
    again = generate_game_dataset(Steered(), tmp_path / "e", 6, 32, 4, seed=3, event_prob=0.5)
    for a, b in zip(ds, again, strict=True):
        assert np.array_equal(a.frames, b.frames) and a.captions == b.captions


def test_game_data_without_policy_holds_keys(tmp_path):
    from samples.catch_game import Catch

    ds = generate_game_dataset(Catch(), tmp_path / "d", 4, 64, 2, seed=0)
    acts = np.concatenate([c.actions for c in ds])
    assert ds.meta.generator["policy"] == "held_key_actions" and set(np.unique(acts)) == {0, 1, 2}
    assert all(set(c.captions) == {"a paddle catches a falling ball"} for c in ds)
    assert Dataset(tmp_path / "d").meta.frame_size == (32, 32)
    with pytest.raises(FileExistsError):
        generate_game_dataset(Catch(), tmp_path / "d", 1, 8, 2)
