"""world.diagnose: sprite tokens, the salience rule's coverage of them, and brief codec trials."""

from __future__ import annotations

import json

import numpy as np
import pytest

from world.config import preset
from world.datagen import generate_dataset
from world.diagnose import codec_capacity, codec_setting, main, salience_coverage, sprite_tokens
from world.game import GameConfig


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("diag") / "data"
    return path, generate_dataset(path, 3, 8, size=64, progress=False, event_prob=0.5)


def test_player_tokens_are_the_cells_its_square_covers(dataset):
    _, ds = dataset
    half = GameConfig.for_size(64).player_size // 2
    for clip in ds:
        tokens = sprite_tokens(clip.frames, grid=8, temporal=2, wall=3)["player"]
        expected = np.zeros_like(tokens)
        for t in range(len(clip)):
            x, y = (int(v) for v in clip.state[t, :2])
            square = np.zeros((64, 64), dtype=int)
            square[y - half : y + half, x - half : x + half] = 1
            expected[t // 2] |= square.reshape(8, 8, 8, 8).sum(axis=(1, 3)) >= 4
        np.testing.assert_array_equal(tokens, expected)


def test_sprite_tokens_rejects_frames_that_do_not_tile():
    with pytest.raises(ValueError, match="latent frames of 2"):
        sprite_tokens(np.zeros((3, 64, 64, 3), np.uint8), grid=8, temporal=2, wall=3)


def test_coverage_is_complete_when_latents_mark_exactly_the_sprites(dataset, tmp_path, capsys):
    # Latents that are large exactly on the sprite tokens and small noise elsewhere: the rule's
    # "stands out" half must pick every sprite token (at most 16 per frame with share 1/4).
    path, ds = dataset
    rng = np.random.default_rng(0)
    lat = 0.01 * rng.standard_normal((len(ds), 4, 3, 8, 8)).astype(np.float32)
    for i, clip in enumerate(ds):
        t = sprite_tokens(clip.frames, grid=8, temporal=2, wall=3)
        lat[i] += 5.0 * (t["player"] | t["balls"])[:, None].astype(np.float32)
    np.save(tmp_path / "latents.npy", lat)
    report = salience_coverage(path, tmp_path / "latents.npy", clips=3, share=0.25)
    for cells in report["weather"].values():
        assert cells["player"]["weighted"] == 1.0
        assert cells["balls"]["weighted"] in (1.0, None)
        assert 0.25 <= cells["all"]["weighted"] <= 0.5  # share, plus the moved tokens
    main(
        [
            "salience",
            "--data",
            str(path),
            "--latents",
            str(tmp_path / "latents.npy"),
            "--clips",
            "3",
            "--share",
            "0.25",
        ]
    )
    assert json.loads(capsys.readouterr().out) == report


def test_coverage_rejects_latents_of_another_dataset(dataset, tmp_path):
    path, ds = dataset
    np.save(tmp_path / "latents.npy", np.zeros((len(ds) + 1, 4, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="holds 4 clips"):
        salience_coverage(path, tmp_path / "latents.npy")


def test_codec_setting_parses_and_explains():
    cfg = codec_setting("latent_channels=4,patch=2,widths=8/8/8")
    assert (cfg.latent_channels, cfg.patch, cfg.widths) == (4, 2, (8, 8, 8))
    assert codec_setting("") == codec_setting("", preset("small").codec)
    with pytest.raises(ValueError, match="KEY=VALUE with KEY one of"):
        codec_setting("channels=4")
    with pytest.raises(ValueError, match="values are integers"):
        codec_setting("patch=two")
    with pytest.raises(ValueError, match="power of two"):
        codec_setting("patch=3")


def test_codec_capacity_learns_and_reports(dataset):
    path, _ = dataset
    small = codec_setting("latent_channels=4,widths=16/16")
    wide = codec_setting("latent_channels=8,widths=16/16")
    untrained, trained, more = (
        *codec_capacity(path, [small], steps=0, batch=4, held_out=1),
        *codec_capacity(path, [small, wide], steps=40, batch=4, held_out=1),
    )
    # 40 steps take a 4-channel codec from 8.1 to 10.8 dB (flat colours learned, not sprites)
    assert trained["held_out_psnr_db"] > untrained["held_out_psnr_db"] + 2
    assert more["parameters"] > trained["parameters"] and more["codec"]["latent_channels"] == 8
    assert trained["steps"] == 40 and trained["decode_ms_per_frame"] > 0
    with pytest.raises(ValueError, match="need more than held_out=3"):
        next(codec_capacity(path, [small], held_out=3))


def test_codec_command_rejects_a_bad_setting_with_usage(dataset, capsys):
    path, _ = dataset
    with pytest.raises(SystemExit) as e:
        main(["codec", "--data", str(path), "--codec", "channels=4"])
    assert e.value.code == 2 and "KEY=VALUE with KEY one of" in capsys.readouterr().err
