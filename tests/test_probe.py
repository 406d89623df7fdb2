"""world.eval.probe: a small convolutional network moving the player in a codec's latents."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from world.eval.diagnose import main
from world.eval.probe import ConvProbe, probe_dynamics
from world.train.datagen import generate_dataset


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "data"
    generate_dataset(path, 6, 16, size=64, progress=False)
    return str(path)


def test_an_untrained_probe_predicts_that_nothing_moves():
    torch.manual_seed(0)
    probe = ConvProbe(channels=16, actions=6, width=16, blocks=1)
    z2, z1 = torch.randn(2, 3, 16, 8, 8)
    assert torch.equal(probe(z2, z1, torch.tensor([[1], [2], [5]])), z1)
    direct = ConvProbe(channels=16, actions=6, width=16, blocks=1, form="direct")
    assert torch.equal(direct(z2, z1, torch.tensor([[1], [2], [5]])), torch.zeros_like(z1))
    noise = torch.randn_like(z1)
    assert torch.equal(
        direct(z2, z1, torch.tensor([[1], [2], [5]]), noise), torch.zeros_like(z1)
    )  # the velocity form outputs zero velocity: its noise back
    velocity = ConvProbe(channels=16, actions=6, width=16, blocks=1, form="velocity")
    assert torch.equal(velocity(z2, z1, torch.tensor([[1], [2], [5]]), noise), noise)
    x0 = ConvProbe(channels=16, actions=6, width=16, blocks=1, form="x0")
    assert torch.equal(x0(z2, z1, torch.tensor([[1], [2], [5]]), noise), torch.zeros_like(z1))
    assert x0.trunk.inp.in_channels == velocity.trunk.inp.in_channels
    assert velocity.trunk.inp.in_channels == direct.trunk.inp.in_channels + 16
    with pytest.raises(ValueError, match="form 'v': one of residual, direct, velocity, x0"):
        ConvProbe(channels=16, actions=6, width=16, blocks=1, form="v")


def test_untrained_it_leaves_every_moving_player_off_and_every_still_one_on(clips):
    """With no training the probe draws frame t-1 again: a player that moved (by its speed, or
    a pixel against a wall) is at least 1 px off, one that stood still is where the codec's own
    round trip puts it (the shipped codec's: within a pixel)."""
    report = probe_dynamics("default", clips, steps=0, held_out=2, frames=200, progress=False)
    assert report["frames"] == 200 and 0 < report["moving_frames"] < 200
    assert report["one_px_off_moving"] == 1.0
    assert report["one_px_off_still"] == report["codec_round_trip_one_px_off"] == 0.0
    share = report["moving_frames"] / report["frames"]
    assert report["one_px_off"] == pytest.approx(share, abs=1e-4)


def test_latents_that_do_not_fit_the_data_are_named(clips, tmp_path):
    np.save(tmp_path / "latents.npy", np.zeros((5, 16, 16, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"latents of shape \(5, 16, 16, 8, 8\).*6 clips"):
        probe_dynamics("default", clips, str(tmp_path / "latents.npy"), held_out=2, progress=False)


def test_dynamics_command_prints_the_report_and_names_bad_input(clips, tmp_path, capsys):
    main(["dynamics", "--data", clips, "--steps", "2", "--held-out", "2", "--frames", "20"])
    report = json.loads(capsys.readouterr().out)
    assert report["probe"]["steps"] == 2 and report["frames"] == 20
    assert report["probe"]["form"] == "residual"
    few = ["dynamics", "--data", clips, "--steps", "0", "--held-out", "2", "--frames", "20"]
    main([*few, "--form", "direct"])
    report = json.loads(capsys.readouterr().out)
    # untrained and direct, it draws nothing: no frame has the player within 2 px
    assert report["probe"]["form"] == "direct" and report["within_2px"] == 0.0
    main([*few, "--form", "velocity", "--seed", "3"])  # untrained, it draws noise: no player
    report = json.loads(capsys.readouterr().out)
    assert report["within_2px"] == 0.0 and report["probe"]["seed"] == 3
    with pytest.raises(SystemExit) as e:
        main(["dynamics", "--data", clips, "--held-out", "6"])
    assert e.value.code == 2
    assert "6 clips, need more than held_out=6" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["dynamics", "--data", str(tmp_path / "none")])
    assert "no dataset" in capsys.readouterr().err
