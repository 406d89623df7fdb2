"""Decoder tuning: only the decoder changes, a resumed run ends where an uninterrupted one does,
and bad calls fail with the fix in the message before anything is written."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from world.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from world.core.config import preset
from world.core.model import WorldModel
from world.train import decoder as td
from world.train.datagen import generate_dataset
from world.train.trainkit import parse_config


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A tiny untrained model and 10 clips of the built-in game at its geometry."""
    root = tmp_path_factory.mktemp("tune")
    generate_dataset(
        root / "data", n_clips=10, clip_frames=8, chunk_frames=2, size=32, progress=False
    )
    torch.manual_seed(0)
    save_checkpoint(WorldModel(preset("tiny")), root / "model", {"step": 7, "card": {"n": 1}})
    return root


def _tuning(source: Path, out: Path, **kw) -> td.DecoderTuning:
    base = dict(
        model=str(source / "model"),
        data=str(source / "data"),
        out=str(out),
        steps=12,
        batch=4,
        lr=2e-3,
        warmup=2,
        held_out=2,
        eval_every=6,
        save_every=3,
        precision="fp32",
    )
    base.update(kw)
    return td.DecoderTuning(**base)


def test_only_the_decoder_changes_and_it_reconstructs_better(source, tmp_path):
    path = td.tune_decoder(_tuning(source, tmp_path / "run"))
    tuned, doc = load_checkpoint(path)
    original, _ = load_checkpoint(source / "model")
    before, after = original.state_dict(), tuned.state_dict()
    decoder = [n for n in before if n.startswith("codec.decoder.")]
    assert decoder and all(not torch.equal(before[n], after[n]) for n in decoder)
    assert all(torch.equal(before[n], after[n]) for n in before if n not in decoder)
    assert doc["step"] == 7 and doc["card"] == {"n": 1}  # the source's record is kept
    (record,) = doc["decoder_tuning"]
    first, last = record["held_out_psnr_db"]
    assert last > first  # on clips it never trained on
    assert record["steps"] == 12
    # a second tuning of the tuned model, in the same directory after its state was deleted:
    # its record starts from where the first one ended, not from the old run's log
    (tmp_path / "run" / td.STATE_FILE).unlink()
    again = td.tune_decoder(_tuning(source, tmp_path / "run", model=str(path), steps=2))
    records = load_checkpoint(again)[1]["decoder_tuning"]
    assert [r["steps"] for r in records] == [12, 2]
    assert records[1]["held_out_psnr_db"][0] == last


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(source, tmp_path, monkeypatch):
    whole = load_checkpoint(td.tune_decoder(_tuning(source, tmp_path / "whole")))[0]
    calls = {"n": 0}
    loss = td.codec_loss

    def stop_after_seven(*args, **kw):  # dies in step 8, after the save at step 6
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return loss(*args, **kw)

    monkeypatch.setattr(td, "codec_loss", stop_after_seven)
    with pytest.raises(KeyboardInterrupt):
        td.tune_decoder(_tuning(source, tmp_path / "cut"))
    monkeypatch.setattr(td, "codec_loss", loss)
    resumed = load_checkpoint(td.tune_decoder(_tuning(source, tmp_path / "cut")))[0]
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_bad_calls_say_how_to_fix_them_and_write_nothing(source, tmp_path):
    with pytest.raises(ValueError, match="--held-out"):
        td.tune_decoder(_tuning(source, tmp_path / "a", held_out=10))
    with pytest.raises(CheckpointError):
        td.tune_decoder(_tuning(source, tmp_path / "b", model=str(tmp_path / "nowhere")))
    other = replace(preset("tiny"), chunk_frames=4)
    save_checkpoint(WorldModel(other), tmp_path / "four")
    with pytest.raises(ValueError, match="chunkworld data generate"):
        td.tune_decoder(_tuning(source, tmp_path / "c", model=str(tmp_path / "four")))
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c"))


def test_latent_noise_is_the_only_randomness_of_the_codec_loss(source):
    model, _ = load_checkpoint(source / "model")
    frames = np.random.default_rng(0).integers(0, 256, (3, 2, 32, 32, 3), dtype=np.uint8)
    quiet = [td.codec_loss(model.codec, frames, "fp32", latent_noise=0.0) for _ in range(2)]
    noisy = [td.codec_loss(model.codec, frames, "fp32", latent_noise=0.5) for _ in range(2)]
    assert torch.equal(quiet[0], quiet[1])
    assert not torch.equal(noisy[0], noisy[1])


def test_the_command_line_has_a_flag_per_field():
    tc = parse_config(
        td.DecoderTuning, "chunkworld tune-decoder", None, ["--steps", "5", "--latent-noise", "0.1"]
    )
    assert tc == td.DecoderTuning(steps=5, latent_noise=0.1)
    with pytest.raises(SystemExit):
        parse_config(td.DecoderTuning, "chunkworld tune-decoder", None, ["--stpes", "5"])


def test_a_grown_decoder_starts_as_the_trained_one_and_the_tuning_trains_its_new_blocks(
    source, tmp_path
):
    original, _ = load_checkpoint(source / "model")
    grown = td.resize_decoder(original, 2)
    assert grown.cfg.codec.decoder_blocks == 2 and len(grown.codec.decoder.refine) == 2
    c = original.cfg.codec
    latents = torch.randn(2, 2, c.latent_channels, *c.grid)
    assert torch.equal(grown.codec.decode(latents), original.codec.decode(latents))
    path = td.tune_decoder(_tuning(source, tmp_path / "run", decoder_blocks=2))
    tuned, doc = load_checkpoint(path)  # the config records the blocks, so it loads as saved
    assert tuned.cfg.codec.decoder_blocks == 2
    assert doc["decoder_tuning"][0]["decoder_blocks"] == 2
    conv = tuned.codec.decoder.refine[1].conv2.weight
    assert conv.abs().sum() > 0  # it started at zero
    again = td.tune_decoder(_tuning(source, tmp_path / "again", model=str(path), steps=1))
    assert load_checkpoint(again)[0].cfg.codec.decoder_blocks == 2  # -1 keeps the model's


def test_a_shrunk_decoder_keeps_its_first_blocks_and_a_resume_keeps_its_blocks(source, tmp_path):
    two = td.tune_decoder(_tuning(source, tmp_path / "two", decoder_blocks=2))
    tuned, _ = load_checkpoint(two)
    shrunk = td.resize_decoder(tuned, 1)
    assert shrunk.cfg.codec.decoder_blocks == 1 and len(shrunk.codec.decoder.refine) == 1
    for a, b in zip(
        shrunk.codec.decoder.refine[0].parameters(),
        tuned.codec.decoder.refine[0].parameters(),
        strict=True,
    ):
        assert torch.equal(a, b)
    c = tuned.cfg.codec
    latents = torch.randn(2, 2, c.latent_channels, *c.grid)
    tuned.codec.decoder.refine = tuned.codec.decoder.refine[:1]  # the second block left out
    assert torch.equal(shrunk.codec.decode(latents), tuned.codec.decode(latents))
    one = td.tune_decoder(_tuning(source, tmp_path / "one", model=str(two), decoder_blocks=1))
    assert load_checkpoint(one)[0].cfg.codec.decoder_blocks == 1
    td.tune_decoder(_tuning(source, tmp_path / "b", steps=3))
    with pytest.raises(ValueError, match="another --decoder-blocks"):
        td.tune_decoder(_tuning(source, tmp_path / "b", steps=6, decoder_blocks=1))
    with pytest.raises(ValueError, match="decoder_blocks=-1 must be 0 or more"):
        WorldModel(replace(preset("tiny"), codec=replace(preset("tiny").codec, decoder_blocks=-1)))


def test_a_cut_of_no_steps_with_half_stores_the_cut_decoder_at_bfloat16(source, tmp_path):
    cut = td.tune_decoder(_tuning(source, tmp_path / "cut", steps=0, decoder_blocks=0, half=True))
    stored = load_file(str(cut / "model.safetensors"))
    assert stored["codec.decoder.out.weight"].dtype == torch.bfloat16
    model, doc = load_checkpoint(cut)
    assert model.cfg.codec.decoder_blocks == 0 and doc["decoder_tuning"][-1]["half"] is True
    want = td.resize_decoder(load_checkpoint(source / "model")[0], 0).state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, want[k].to(stored[k].dtype).float()), k
