"""The scorecard: a session that is the engine itself meets every line of the game's bar; one that
copies its last frame does not; held-out phrasings parse to exactly their event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from world.eval.scorecard import (
    HELD_OUT_PROMPTS,
    ScorecardConfig,
    held_out_prompt,
    scene_asked,
    scorecard,
)
from world.games.actions import ACTIONS
from world.games.arcade import Game, GameConfig
from world.games.captions import EVENT_TEMPLATES, Prompt, parse_prompt

F, K, SIZE = 4, 2, 64


@dataclass
class _Chunk:
    frames: np.ndarray


class EngineSession:
    """A 'model' that is the true engine: it knows the seed the scorecard starts from."""

    def __init__(self) -> None:
        self.game = Game(GameConfig.for_size(SIZE))

    def reset(self, *, prompt=None, image=None, video=None, seed=None) -> _Chunk:
        self.game.reset(int(seed or 0))
        if video is not None:
            frames = [self.game.step(0) for _ in range(len(video))]
            assert np.array_equal(np.stack(frames), video)  # the scorecard's start, replayed
            return _Chunk(np.stack(frames[-F:]))
        if prompt:
            self.game.apply_prompt(prompt)
        return _Chunk(np.stack([self.game.step(0) for _ in range(F)]))

    def step(self, action: Any = None, *, prompt: str | None = None) -> _Chunk:
        if prompt is not None:
            self.game.apply_prompt(prompt)
        return _Chunk(np.stack([self.game.step(ACTIONS.index(a)) for a in action]))


class CopyLastSession(EngineSession):
    """Shows the start's last frame forever."""

    def step(self, action: Any = None, *, prompt: str | None = None) -> _Chunk:
        return _Chunk(np.repeat(self.game.render()[None], F, 0))


SMALL = ScorecardConfig(episodes=2, horizon=4, long_ticks=10, prompt_trials=6)


def _card(session) -> dict:
    return scorecard(session, frame_size=SIZE, chunk_frames=F, history_chunks=K, config=SMALL)


def test_the_engine_itself_meets_every_game_line():
    lines = _card(EngineSession())["lines"]
    for name in (
        "following",
        "idle",
        "alternating_lr",
        "alternating_ud",
        "balls_mean16",
        "balls_tick16",
        "long_wall_kept",
        "prompts_train",
        "prompts_heldout",
        "prompt_wreck_free",
        "text_start_player",
        "text_start_scene",
        "psnr_tick1",
        "psnr_mean16",
        "beats_copy_last",
    ):
        assert lines[name]["met"], (name, lines[name])
    assert lines["long_balls"]["value"] == 0.0
    assert lines["psnr_tick1"]["value"] == 60.0  # equal frames, capped


def test_units_are_what_each_line_averages():
    card = _card(CopyLastSession())
    units, lines = card["units"], card["lines"]
    assert card["trials"]["episodes"] == SMALL.episodes
    sizes = {"following": 2, "idle": 1, "balls_tick16": 2, "prompts_train": 6, "psnr_tick1": 2}
    for name, n in sizes.items():
        assert len(units[name]) == n, name
    for name in ("following", "idle", "balls_mean16", "prompts_heldout", "psnr_mean16"):
        assert np.mean(units[name]) == pytest.approx(lines[name]["value"], abs=1e-4), name
    assert len(units["text_start_scene"]) == card["text_start_scene_checks"]
    assert "long_balls" not in units and "fps" not in units  # measured once: nothing to pair


def test_copy_last_fails_what_moves():
    lines = _card(CopyLastSession())["lines"]
    assert not lines["following"]["met"]
    assert not lines["beats_copy_last"]["met"]  # it is copy-last: never strictly above it
    assert lines["idle"]["value"] == 1.0  # a player that never moves stays put when idle


class CaptionDeafSession(EngineSession):
    """The engine, but a text start ignores its caption: a random scene of the seed."""

    def reset(self, *, prompt=None, image=None, video=None, seed=None) -> _Chunk:
        return super().reset(prompt=None, image=image, video=video, seed=seed)


def test_a_start_deaf_to_its_caption_misses_the_scene_but_keeps_the_player():
    card = _card(CaptionDeafSession())
    assert card["text_start_scene_checks"] == 23  # what the eight captions ask, as parsed
    assert card["lines"]["text_start_scene"]["value"] < 0.7
    assert card["lines"]["text_start_player"]["met"]


def test_scene_asked_checks_what_the_caption_names_and_nothing_else():
    seen = {
        "is_night": True,
        "weather": "snow",
        "ball_count": 2,
        "ball_colour": "red",
        "wall_colour": None,
    }
    assert scene_asked("a ball bounces", seen) == []
    assert scene_asked("night, two red balls", seen) == [True, True, True]
    assert scene_asked("day, snow, blue walls", seen) == [False, True, False]


@pytest.mark.parametrize("kind", sorted(HELD_OUT_PROMPTS))
def test_held_out_phrasings_parse_to_exactly_their_event(kind):
    want = {
        "night": Prompt(time="night"),
        "day": Prompt(time="day"),
        "rain": Prompt(weather="rain"),
        "snow": Prompt(weather="snow"),
        "clear": Prompt(weather="clear"),
        "spawn": Prompt(add_balls=1),
        "ball_colour": Prompt(ball_colour="blue"),
        "wall_colour": Prompt(wall_colour="blue"),
    }[kind]
    assert len(HELD_OUT_PROMPTS[kind]) >= 5
    for text in HELD_OUT_PROMPTS[kind]:
        assert parse_prompt(text.format(c="blue", w="rain")) == want, text
        assert text not in EVENT_TEMPLATES[kind]  # never a training template


def test_held_out_prompt_changes_the_state():
    game = Game(GameConfig.for_size(SIZE))
    game.reset(3)
    rng = np.random.default_rng(0)
    for kind in ("ball_colour", "wall_colour"):
        text = held_out_prompt(rng, kind, game.state())
        before = getattr(game.state(), kind)
        assert game.apply_prompt(text)
        assert getattr(game.state(), kind) != before


def test_eval_command_refuses_a_missing_model_with_a_message(tmp_path, capsys):
    from sdk.evaluate import main

    assert main(["--model", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "chunkworld eval: error" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["--episodes", "0"])
    assert "--episodes must be at least 1" in capsys.readouterr().err


def test_eval_command_passes_its_prior_level_to_the_session(tmp_path, capsys):
    from sdk.evaluate import main
    from world.core.checkpoint import save_checkpoint
    from world.core.config import preset
    from world.core.model import WorldModel

    save_checkpoint(WorldModel(preset("tiny")), tmp_path / "m", {"step": 0})  # no prior
    args = ["--model", str(tmp_path / "m"), "--out", str(tmp_path / "o"), "--quiet"]
    assert main([*args, "--prior-level", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "prior_level=0.3" in err and "chunkworld train-prior adds one" in err
    assert "Traceback" not in err
