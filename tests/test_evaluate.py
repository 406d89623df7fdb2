"""The evaluation command's measures: the ball check on known frames, the 95% intervals it
reports, and one small evaluation of a random tiny model end to end (structure and ranges of
what it reports)."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from world.core.checkpoint import save_checkpoint
from world.core.config import preset
from world.core.model import WorldModel
from world.core.sampler import PipelinedSampler
from world.eval.episodes import true_episode
from world.eval.evaluate import EvalConfig, _balls_kept, evaluate
from world.eval.figures import GAP_RGB, chunk_ticks, rollout_grid
from world.eval.metrics import mean_interval, psnr, wilson_interval
from world.games.arcade import PALETTE, SKY_RGB, Game, GameConfig


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
    # each share comes with its 95% interval, which holds it
    for share, ci in (
        ("action_following", "action_following_ci95"),
        ("prompt_success", "prompt_success_ci95"),
    ):
        lo, hi = result[ci]
        assert 0.0 <= lo <= result[share] <= hi <= 1.0
    picture = iio.imread(tmp_path / "eval" / "rollouts.png")  # 2 episodes, chunks 1, 2, 3
    assert picture.shape == (4 * 32 + 2 + 4 + 2, 3 * 32 + 2 * 2, 3)
    assert set(result["bar"]["met"]) == {
        "psnr_1_db",
        "psnr_avg16_db",
        "beats_copy_last",
        "action_following",
        "prompt_success",
        "player_detectable",
        "fps",
    }


def test_the_codec_round_trip_is_the_codecs_alone(tmp_path):
    torch.manual_seed(0)
    model = WorldModel(preset("tiny"))
    other = WorldModel(preset("tiny"))  # another denoiser and text encoder, the same codec
    other.codec.load_state_dict(model.codec.state_dict())
    with torch.no_grad():  # the denoiser's last layers start at zero: move them, so it draws
        for p in other.denoiser.parameters():  # other frames
            p.add_(0.05 * torch.randn_like(p))
    results = []
    for name, m in (("a", model), ("b", other)):
        save_checkpoint(m, tmp_path / name)
        ec = EvalConfig(
            model=str(tmp_path / name), out=str(tmp_path / f"eval_{name}"), episodes=1,
            horizon=2, prompt_trials=1, long_ticks=0,
        )  # fmt: skip
        results.append(evaluate(ec, progress=False))
    a, b = results
    assert a["psnr_db"] != b["psnr_db"]
    assert a["codec_round_trip_psnr_db"] == b["codec_round_trip_psnr_db"]
    cfg = model.cfg
    f, k = cfg.chunk_frames, cfg.history_chunks
    truth = true_episode(EvalConfig().seed, k + 2, f, cfg.codec.frame_size).frames[k * f :]
    play = PipelinedSampler(model, precision=EvalConfig().precision)  # decodes as eval does
    back = play.decode(model.codec.encode(torch.from_numpy(truth)[None]))[0].numpy()
    expected = [
        round(psnr(back[i * f : (i + 1) * f], truth[i * f : (i + 1) * f]), 2) for i in (0, 1)
    ]
    assert a["codec_round_trip_psnr_db"] == expected


def test_wilson_interval_known_values_and_properties():
    # 36 of 40 by hand: centre (0.9 + z^2/80) / (1 + z^2/40), half-width z * sqrt(...) / (same)
    lo, hi = wilson_interval(36, 40)
    assert (round(lo, 4), round(hi, 4)) == (0.7695, 0.9604)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError, match="hits <= trials"):
        wilson_interval(5, 4)


@given(st.integers(1, 400), st.data())
def test_wilson_interval_holds_the_share_and_narrows_with_trials(n, data):
    k = data.draw(st.integers(0, n))
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    lo4, hi4 = wilson_interval(4 * k, 4 * n)  # the same share on four times the trials
    assert hi4 - lo4 < hi - lo


def test_mean_interval_is_the_normal_interval_of_the_units():
    lo, hi = mean_interval(np.array([0.5, 0.7, 0.9]))  # mean 0.7, sd 0.2, se 0.2 / sqrt(3)
    half = 1.96 * 0.2 / np.sqrt(3)
    assert np.isclose(lo, 0.7 - half) and np.isclose(hi, 0.7 + half)
    assert mean_interval(np.array([1.0, 1.0, 0.98]))[1] == 1.0  # clipped to a share
    with pytest.raises(ValueError, match="at least 2 units"):
        mean_interval(np.array([0.5]))


def test_rollout_grid_puts_each_chunks_last_frame_in_its_place():
    rng = np.random.default_rng(0)
    gen, truth = (rng.integers(0, 256, (5, 2, 8, 6, 3), dtype=np.uint8) for _ in range(2))
    grid = rollout_grid([(gen, truth), (truth, gen)], [1, 3, 5], gap=1)
    assert grid.shape == (4 * 8 + 1 + 2 + 1, 3 * 6 + 2, 3)
    assert np.array_equal(grid[:8, 7:13], gen[2, -1])  # generated row, second column: chunk 3
    assert np.array_equal(grid[9:17, 14:20], truth[4, -1])  # true row, third column: chunk 5
    assert np.array_equal(grid[19:27, :6], truth[0, -1])  # second rollout, generated row
    assert (grid[8] == GAP_RGB).all() and (grid[:, 6] == GAP_RGB).all()
    assert chunk_ticks(16) == [1, 2, 3, 4, 6, 8, 10, 12, 16] and chunk_ticks(5) == [1, 2, 3, 4, 5]


def test_eval_command_refuses_bad_input_with_its_message_not_a_traceback(tmp_path, capsys):
    from world.eval.evaluate import main

    with pytest.raises(
        SystemExit, match=r"python -m world.eval.evaluate: error: .*config.json: missing"
    ):
        main(["--model", str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--quiet"])
    save_checkpoint(WorldModel(preset("tiny")), tmp_path / "m", {"step": 0})
    with pytest.raises(SystemExit, match=r"steps \(3\) must be a positive multiple of in_flight"):
        main(["--model", str(tmp_path / "m"), "--steps", "3", "--in-flight", "2", "--quiet"])
    with pytest.raises(SystemExit):  # argparse: one of the choices
        main(["--model", str(tmp_path / "m"), "--precision", "fp16"])
    assert "choose from 'auto', 'fp32', 'bf16'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "tune-decoder", "train-prior"])
def test_training_commands_name_missing_data_not_a_traceback(tmp_path, command):
    from world.train.decoder import main as tune
    from world.train.prior import main as prior
    from world.train.stages import main as train

    save_checkpoint(WorldModel(preset("tiny")), tmp_path / "m", {"step": 0})
    none, out = str(tmp_path / "none"), str(tmp_path / "o")
    run = {"train": train, "tune-decoder": tune, "train-prior": prior}[command]
    args = ["--data", none, "--out", out, *(["--model", str(tmp_path / "m")] * (run is not train))]
    prog = "python -m world.train" if command == "train" else f"chunkworld {command}"
    with pytest.raises(SystemExit, match=f"{prog}: error: no dataset at .*none"):
        run(args)
