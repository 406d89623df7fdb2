"""world.eval.following (``chunkworld following``): the player's error in generated frames,
broken down by chunk, frame, action, motion, scene and cell crossing."""

from __future__ import annotations

import json
import types
from dataclasses import replace

import numpy as np
import pytest

from world.core.config import preset
from world.eval.following import main


def _shifted_rows(seed: int, shift: int):
    from world.eval.episodes import true_episode
    from world.eval.following import frame_errors

    ep = true_episode(seed, 6, 4, 64)
    frames = np.roll(ep.frames[8:], shift, axis=2)  # the player moved `shift` px to the right
    return ep, frame_errors(frames, ep, 8, 4, 2, cell=8)


@pytest.mark.parametrize("seed", [1, 4])
def test_true_frames_follow_exactly_and_a_shift_shows_along_the_motion(seed):
    from world.eval.following import breakdown

    ep, exact = _shifted_rows(seed, 0)
    assert [r.error for r in exact] == [0.0] * 16
    assert breakdown(exact)["within_tol"] == 1.0
    _, off = _shifted_rows(seed, 3)
    assert [r.error for r in off] == [3.0] * 16
    for t, r in enumerate(off):
        dx, dy = ep.player[8 + t] - ep.player[7 + t]
        assert r.moving == bool(dx or dy)
        assert r.along == (None if not r.moving else 3.0 * dx / np.hypot(dx, dy))
        assert (r.chunk, r.frame, r.phase) == (t // 4 + 1, t % 4, t % 2)
    report = breakdown(off)
    assert report["within_tol"] == 0.0 and report["not_found"] == 0
    # the offset is made in the first frame (its predecessor is the true start) and then carried
    assert report["strays"] == 1 and report["by"]["chunk"]["1"]["strays"] == 1
    assert breakdown(exact)["strays"] == 0
    for t, r in enumerate(off):  # frames the key has been held, counted back into the start
        i = 8 + t
        assert r.held == next(
            h for h in range(1, i + 2) if h > i or ep.actions[i - h] != ep.actions[i]
        )
    assert sum(g["frames"] for g in report["by"]["press"].values()) == 16

    def covered(p):  # the 8-px latent cells the 6-px sprite centred at p covers, per axis
        return [set(range(int(v - 3) // 8, int(v + 2) // 8 + 1)) for v in p]

    for t, r in enumerate(off):
        assert r.crossing == (covered(ep.player[8 + t]) != covered(ep.player[7 + t]))
        assert r.moving or not r.crossing
    assert sum(g["frames"] for g in report["by"]["cell"].values()) == 16
    assert sum(g["frames"] for g in report["by"]["chunk"].values()) == 16


def test_cells_a_sprite_covers():
    from world.eval.following import _cells

    # a 6-px sprite at x = 8 covers pixels 5..10 (cells 0 and 1); at x = 12, 9..14 (cell 1)
    assert _cells(np.array([[8, 12], [12, 8]]), 6, 8).tolist() == [[0, 1, 1, 1], [1, 0, 1, 1]]


def test_breakdown_counts_each_group_and_averages_the_signed_error():
    from world.eval.following import FrameError, breakdown

    def row(chunk, error, along, moving=True):
        return FrameError(chunk, 0, 0, "right", "day", moving, False, error, along)

    rows = [row(1, 0.5, -0.5), row(1, 3.0, -3.0), row(2, None, None), row(2, 1.0, None, False)]
    report = breakdown(rows)
    assert report["frames"] == 4 and report["not_found"] == 1
    assert report["within_tol"] == 0.5
    assert report["by"]["chunk"]["1"] == {
        "frames": 2,
        "within_tol": 0.5,
        "not_found": 0,
        "median_px": 1.75,
        "one_px_off": 0.5,
        "strays": 1,
    }
    # a stray needs the player within the tolerance just before: carried offsets do not count
    carried = [replace(r, before=b) for r, b in zip(rows, [0.5, 2.5, None, 3.0], strict=True)]
    assert breakdown(carried)["strays"] == 0
    assert breakdown([replace(rows[2], before=1.0)])["strays"] == 1  # the player vanished
    assert report["by"]["chunk"]["2"]["within_tol"] == 0.5
    assert report["by"]["motion"]["still"]["frames"] == 1
    assert report["along_motion_px"]["chunk"] == {"1": -1.75}
    with pytest.raises(ValueError, match="no frames"):
        breakdown([])


def test_frame_errors_rejects_frames_off_the_chunk_grid():
    from world.eval.episodes import true_episode
    from world.eval.following import frame_errors

    ep = true_episode(0, 4, 4, 64)
    with pytest.raises(ValueError, match="multiple of chunk_frames"):
        frame_errors(ep.frames[6:], ep, 6, 4, 2, cell=8)
    with pytest.raises(ValueError, match="do not fit"):
        frame_errors(ep.frames[4:], ep, 8, 4, 2, cell=8)


def test_one_step_generates_each_chunk_after_its_own_true_history(monkeypatch):
    """``--one-step`` hands the sampler, for chunk k + c, the true chunks c .. k + c - 1 and the
    actions and caption of chunk k + c. A stand-in sampler that repeats the last history chunk
    (copy-last) must give back the true chunk before each one."""
    import world.eval.following as following
    from world.eval.episodes import true_episode

    seen = {}

    def copy_last(model, history, history_actions, actions, captions, seed, precision, prior_level):
        seen.update(history_actions=history_actions, actions=actions, captions=captions)
        seen.update(precision=precision, prior_level=prior_level)
        return history[:, -1:]

    tiny = preset("tiny")  # with an identity codec: one latent frame per frame
    cfg = tiny.replace(codec=replace(tiny.codec, temporal=1))
    model = types.SimpleNamespace(cfg=cfg, codec=_FakeCodec())
    monkeypatch.setattr(following, "generate_after", copy_last)
    f, k, horizon = cfg.chunk_frames, cfg.history_chunks, 3
    ep = true_episode(5, k + horizon, f, 64)
    sampler = types.SimpleNamespace(
        model=model, precision="bf16", prior_level=0.2, decode=model.codec.decode
    )
    gen = following._one_step(sampler, ep, horizon, seed=0)
    assert gen.shape == (horizon, f, 64, 64, 3)
    assert seen["precision"] == "bf16"  # generated at the play sampler's precision and level
    assert seen["prior_level"] == 0.2
    for c in range(horizon):
        assert np.array_equal(gen[c], ep.frames[(k + c - 1) * f : (k + c) * f])
        assert seen["actions"][c, 0].tolist() == ep.actions[(k + c) * f : (k + c + 1) * f].tolist()
        assert (
            seen["history_actions"][c, -1].tolist()
            == ep.actions[(k + c - 1) * f : (k + c) * f].tolist()
        )
        assert seen["captions"][c] == [ep.captions[k + c]]


@pytest.mark.parametrize("codec_only", [False, True])
def test_following_command_scores_every_generated_frame(tmp_path, capsys, codec_only):
    from world.core.checkpoint import save_checkpoint
    from world.core.model import WorldModel

    save_checkpoint(WorldModel(preset("tiny")), tmp_path / "m", {"step": 0})
    args = ["--model", str(tmp_path / "m"), "--episodes", "2", "--horizon", "3"]
    main([*args, "--quiet", *(["--codec-only"] if codec_only else [])])
    report = json.loads(capsys.readouterr().out)
    chunk = preset("tiny").chunk_frames
    assert report["frames"] == 2 * 3 * chunk
    assert report["mode"] == ("codec round trip" if codec_only else "rollout")
    assert list(report["by"]["chunk"]) == ["1", "2", "3"]
    assert sum(g["frames"] for g in report["by"]["scene"].values()) == 2 * 3 * chunk
    if codec_only:
        return
    main([*args, "--quiet", "--one-step"])
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "one step" and report["frames"] == 2 * 3 * chunk
    assert list(report["by"]["chunk"]) == ["1", "2", "3"]  # each one tick from the truth
    assert list(report["by"]["frame"]) == [str(i) for i in range(chunk)]
    with pytest.raises(SystemExit):
        main([*args, "--quiet", "--one-step", "--codec-only"])
    assert "not both" in capsys.readouterr().err
    from world.eval.following import following_report

    with pytest.raises(ValueError, match="mode must be one of rollout, one step, codec"):
        following_report(tmp_path / "m", mode="teacher forced")


def test_following_command_scores_a_datasets_clips_and_the_unseen_ones(tmp_path, capsys):
    from world.core.checkpoint import save_checkpoint
    from world.core.model import WorldModel
    from world.train.datagen import generate_dataset

    cfg = preset("tiny")
    save_checkpoint(WorldModel(cfg), tmp_path / "m", {"step": 0})
    data = tmp_path / "d"
    generate_dataset(data, n_clips=2, clip_frames=12, chunk_frames=2, size=32, progress=False)
    args = ["--model", str(tmp_path / "m"), "--data", str(data), "--quiet"]
    for unseen in (False, True):
        main([*args, "--episodes", "2", "--horizon", "4", *(["--unseen"] if unseen else [])])
        report = json.loads(capsys.readouterr().out)
        assert report["data"] == str(data) and "seed" not in report
        assert report["clips"] == ("unseen" if unseen else "held")
        assert report["frames"] == 2 * 4 * cfg.chunk_frames
    for extra, message in [
        (["--episodes", "3", "--horizon", "4"], "holds 2 clips, fewer than 3"),
        (["--horizon", "5"], "give a horizon of at most 4"),
    ]:
        with pytest.raises(SystemExit):
            main([*args, *extra])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path / "m"), "--unseen", "--quiet"])
    assert "give data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args[:-3], "--data", str(tmp_path / "none"), "--quiet"])
    assert "no dataset at" in capsys.readouterr().err
    other = tmp_path / "o"
    generate_dataset(other, n_clips=1, clip_frames=12, chunk_frames=2, size=64, progress=False)
    with pytest.raises(SystemExit):
        main([*args[:-3], "--data", str(other), "--horizon", "4", "--quiet"])
    assert "64-px frames in chunks of 2, the model 32 px" in capsys.readouterr().err


def test_following_command_names_a_missing_model(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--model", str(tmp_path / "nope"), "--quiet"])
    assert e.value.code == 2
    assert "config.json" in capsys.readouterr().err


class _FakeCodec:
    """encode/decode as the identity, or with every frame moved ``shift`` px to the right."""

    def __init__(self, shift: int = 0) -> None:
        self.cfg = replace(preset("small").codec, temporal=2)
        self.shift = shift

    def encode(self, frames):
        return frames

    def decode(self, z):
        return z.roll(self.shift, dims=3)
