"""The evaluation command's measures: the ball check on known frames, and one small evaluation
of a random tiny model end to end (structure and ranges of what it reports)."""

from __future__ import annotations

import json

import numpy as np

from world.checkpoint import save_checkpoint
from world.config import preset
from world.evaluate import EvalConfig, _balls_kept, evaluate
from world.game import PALETTE, SKY_RGB, Game, GameConfig
from world.model import WorldModel


def _scene() -> tuple[Game, np.ndarray]:
    game = Game(GameConfig(random_scene=False, n_balls=2))
    frame = game.reset(3)
    return game, frame


def test_balls_kept_needs_the_same_count_and_colour():
    game, frame = _scene()
    assert _balls_kept(frame, frame)
    one_gone = frame.copy()  # paint the first ball's disc over with sky
    x, y = (int(v) for v in game.state().balls[0][:2])
    r = game.config.ball_radius
    one_gone[y - r : y + r + 1, x - r : x + r + 1] = SKY_RGB["day"]
    assert not _balls_kept(one_gone, frame)
    recoloured = frame.copy()
    red = (frame == PALETTE["red"]).all(-1)
    assert red.any()
    recoloured[red] = PALETTE["blue"]
    assert not _balls_kept(recoloured, frame)


def test_evaluate_reports_every_measure(tmp_path):
    save_checkpoint(WorldModel(preset("tiny")), tmp_path / "model", {"step": 0})
    ec = EvalConfig(
        model=str(tmp_path / "model"),
        out=str(tmp_path / "eval"),
        episodes=2,
        horizon=3,
        prompt_trials=2,
        long_ticks=4,
    )
    result = evaluate(ec, progress=False)
    assert json.loads((tmp_path / "eval" / "eval.json").read_text())["psnr_db"] == result["psnr_db"]
    for key in ("psnr_db", "copy_last_psnr_db", "ssim", "action_following_per_chunk"):
        assert len(result[key]) == 3
    assert len(result["balls_kept_per_chunk"]) == 3
    shares = [result["action_following"], result["balls_kept"], result["prompt_success"]]
    shares += [result["stability"][k] for k in ("player_detectable", "balls_kept_last_100_ticks")]
    assert all(0.0 <= x <= 1.0 for x in shares)
    assert np.isclose(result["balls_kept"], np.mean(result["balls_kept_per_chunk"]), atol=1e-3)
    assert result["setting"]["steps"] == preset("tiny").sampler.steps
    assert set(result["bar"]["met"]) == {
        "psnr_1_db",
        "psnr_avg16_db",
        "beats_copy_last",
        "action_following",
        "prompt_success",
        "player_detectable",
        "fps",
    }
