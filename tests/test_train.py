"""Training: one short run end to end (tiny preset, tiny data), resuming, and DDP with two CPU
processes under torchrun whose weights stay identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from world.core.checkpoint import load_checkpoint
from world.core.codec import codec_setting, codec_text
from world.core.config import preset
from world.core.model import WorldModel
from world.core.text import vocabulary
from world.train.codec import codec_step
from world.train.data import Dataset
from world.train.datagen import generate_dataset
from world.train.stages import TrainConfig, plot_metrics, run
from world.train.trainkit import (
    codec_leg_lr,
    config_parser,
    leg_lr,
    lr_at,
    parse_config,
)


def _config(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        data=str(data),
        out=str(out),
        preset="tiny",
        codec_steps=3,
        codec_batch=4,
        steps=4,
        batch=2,
        eval_every=2,
        save_every=2,
        warmup=2,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_train_end_to_end_then_resume(tiny_data, tmp_path):
    out = tmp_path / "run"
    run(_config(tiny_data, out))
    model, doc = load_checkpoint(out / "model")
    assert doc["step"] == 4 and model.cfg.name == "tiny"
    assert model.cfg.codec.latent_scale != 1.0  # set from the trained codec's latent std
    # the words it trained on, recorded so that play spells the others (world/core/text.py)
    caps = [c for clip in Dataset(tiny_data) for c in clip.captions]
    assert model.cfg.text.known_words == vocabulary(caps) and "balls" in vocabulary(caps)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["phase"] for r in rows} >= {"codec", "denoiser", "eval"}
    assert all(r["loss"] == r["loss"] for r in rows if "loss" in r)  # no NaN
    # resume: asking for more steps continues from step 4, not from scratch
    run(_config(tiny_data, out, steps=6))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    den = [r["step"] for r in rows if r["phase"] == "denoiser"]
    assert den.count(0) == 1 and max(den) <= 5
    assert load_checkpoint(out / "model")[1]["step"] == 6
    assert (out / "metrics.png").is_file()
    assert not plt.get_fignums()  # the plot's figure is closed, not kept by pyplot


def test_more_codec_steps_continue_the_codec_then_the_denoiser_on_new_latents(tiny_data, tmp_path):
    out = tmp_path / "run"
    run(_config(tiny_data, out))
    scale = json.loads((out / "progress.json").read_text())["latent_scale"]
    old = np.load(out / "latents.npy")
    run(_config(tiny_data, out, codec_steps=5, codec_schedule_from=3, steps=6))
    assert codec_step(out) == 5
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    codec = [r["step"] for r in rows if r["phase"] == "codec"]
    assert codec.count(0) == 1  # it went on from step 3: it did not start again
    den = [r["step"] for r in rows if r["phase"] == "denoiser"]
    assert den.count(0) == 1 and max(den) <= 5  # the denoiser went on from step 4
    new = np.load(out / "latents.npy")
    assert new.shape == old.shape and not np.array_equal(new, old)  # encoded by the new codec
    model, doc = load_checkpoint(out / "model")
    assert doc["step"] == 6
    assert model.cfg.codec.latent_scale == scale  # the denoiser's latent scale stays put


@pytest.mark.parametrize("name", ["tiny", "small", "base", "large"])
def test_codec_text_is_the_inverse_of_codec_setting(name):
    codec = replace(preset(name).codec, temporal=1, latent_scale=0.25)
    assert codec_setting(codec_text(codec), preset("small").codec) == replace(
        codec, latent_scale=preset("small").codec.latent_scale
    )


def test_a_codec_leg_gets_its_own_warm_up_and_decay():
    tc = TrainConfig(codec_steps=1000, codec_schedule_from=500, codec_lr=1e-3)
    assert codec_leg_lr(tc, 500) == pytest.approx(1e-3 / 50)  # first warm-up step of the leg
    assert codec_leg_lr(tc, 549) == pytest.approx(1e-3)
    assert codec_leg_lr(tc, 1000) == pytest.approx(5e-5)
    plain = TrainConfig(codec_steps=1000, codec_lr=1e-3)
    assert [codec_leg_lr(plain, s) for s in (0, 700)] == [
        lr_at(s, 1000, 1e-3, 50) for s in (0, 700)
    ]


def test_train_with_self_rollout(tiny_data, tmp_path):
    out = tmp_path / "roll"
    run(_config(tiny_data, out, rollout=1.0, steps=4, save_every=4, eval_every=4))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    den = [r for r in rows if r["phase"] == "denoiser"]
    assert den and all(0 <= r["rolled_out"] <= 2 for r in den)  # batch=2
    assert all(r["loss"] == r["loss"] for r in den)
    assert load_checkpoint(out / "model")[1]["train"]["rollout"] == 1.0


def test_train_with_pixel_history_rolls_out_and_plays_with_it(tiny_data, tmp_path, monkeypatch):
    """``--pixel-history``: the self-rollouts feed the context as the cache keeps it (the
    encoding of the generated frames), and the model it writes plays with it."""
    import world.train.rollout as rollout

    seen = []
    real = rollout.generate_after

    def spy(*args, **kw):
        out = real(*args, **kw)
        seen.append((args[0].cfg.sampler.pixel_history, kw.get("as_history")))
        return out

    monkeypatch.setattr(rollout, "generate_after", spy)
    out = tmp_path / "pixels"
    run(_config(tiny_data, out, rollout=1.0, pixel_history=True, save_every=4, eval_every=4))
    assert seen and all(s == (True, True) for s in seen)
    model, meta = load_checkpoint(out / "model")
    assert model.cfg.sampler.pixel_history is True and meta["train"]["pixel_history"] is True


def test_train_with_deep_self_rollout(tiny_data, tmp_path):
    """``--rollout-depth``: streams feed the model's chunks back, one deeper per step."""
    out = tmp_path / "deep"
    run(
        _config(
            tiny_data, out, rollout=1.0, rollout_depth=3, rollout_drift=2.0, steps=6, save_every=6
        )
    )
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    den = [r for r in rows if r["phase"] == "denoiser"]
    assert den and all(0 <= r["rolled_out"] <= 2 for r in den)  # batch=2, two streams
    assert all(0 <= r["rollout_depth"] <= 3 and 0 <= r["anchored"] <= 2 for r in den)
    assert all(r["loss"] == r["loss"] for r in den)
    train = load_checkpoint(out / "model")[1]["train"]
    assert train["rollout_depth"] == 3 and train["rollout_drift"] == 2.0


def test_train_with_replayed_targets(tiny_data, tmp_path, monkeypatch):
    """``--rollout-resim``: the streams' targets are the clip replayed from the generated
    player's place (an untrained model draws no player, so the detector is told where it is)."""
    import world.train.rollout

    monkeypatch.setattr(world.train.rollout, "find_player", lambda frame: (12.0, 13.0))
    out = tmp_path / "resim"
    run(_config(tiny_data, out, rollout=1.0, rollout_depth=3, rollout_resim=True, steps=4))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    den = [r for r in rows if r["phase"] == "denoiser"]
    assert den[-1]["retargeted"] > 0 and all(r["loss"] == r["loss"] for r in den)
    assert load_checkpoint(out / "model")[1]["train"]["rollout_resim"] is True
    argv = ["--rollout", "0.5", "--rollout-depth", "8", "--rollout-resim"]
    assert parse_config(TrainConfig, "chunkworld train", None, argv).rollout_resim is True
    assert parse_config(TrainConfig, "chunkworld train", None, []).rollout_resim is False


@pytest.mark.parametrize(
    "kw",
    [dict(rollout_depth=4), dict(rollout=0.5, rollout_drift=2.0), dict(rollout_resim=True)],
)
def test_deep_rollout_flags_without_their_base_are_refused(tiny_data, tmp_path, kw):
    with pytest.raises(ValueError, match="--rollout 0.5 --rollout-depth 64"):
        run(_config(tiny_data, tmp_path / "bad", **kw))
    assert not (tmp_path / "bad" / "denoiser_state.safetensors").exists()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])  # bf16: what "auto" picks on AVX512-BF16
def test_train_with_a_frozen_text_encoder(
    tiny_data, tmp_path, monkeypatch, fake_sentence_model, precision
):
    """``--text-encoder sentence-transformers:...``: the projection trains, the config records it."""
    fake = fake_sentence_model()
    monkeypatch.setattr("world.train.stages.load_backend", lambda spec: fake)
    out = tmp_path / "run"
    run(_config(tiny_data, out, text_encoder="sentence-transformers:fake", precision=precision))
    model, _ = load_checkpoint(out / "model")
    assert model.cfg.text.encoder == "sentence-transformers:fake"
    assert model.cfg.text.frozen_dim == fake.width
    torch.manual_seed(0)  # run() seeds with TrainConfig.seed before building the model
    init = WorldModel(model.cfg).text
    assert not torch.equal(model.text.proj.weight, init.proj.weight)  # the adapter trained
    assert len(fake.calls) > 1  # captions reached the frozen encoder during training


def test_mismatched_dataset_is_a_clear_error(tmp_path):
    data = tmp_path / "d64"
    generate_dataset(data, n_clips=2, clip_frames=8, chunk_frames=4, size=64, progress=False)
    with pytest.raises(ValueError, match="--size 64 --chunk 2"):
        run(_config(data, tmp_path / "run"))


def test_ddp_two_cpu_processes(tiny_data, tmp_path):
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--nproc-per-node",
        "2",
        "--master-port",
        "29517",
        "-m",
        "world.train",
        "--data",
        str(tiny_data),
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--codec-steps",
        "2",
        "--codec-batch",
        "2",
        "--steps",
        "3",
        "--batch",
        "2",
        "--eval-every",
        "100",
        "--save-every",
        "100",
        "--warmup",
        "1",
        "--threads",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    ddp = [r for r in rows if r["phase"] == "ddp"]
    assert len(ddp) == 1 and ddp[0]["world_size"] == 2
    a, b = ddp[0]["checksums"]
    assert a == b  # averaged gradients kept both processes' weights identical
    assert load_checkpoint(out / "model")[1]["step"] == 3


def test_a_resumed_leg_gets_its_own_warm_up_and_decay():
    tc = TrainConfig(steps=200, schedule_from=100, warmup=10, lr=1e-3)
    assert leg_lr(tc, 100) == pytest.approx(1e-4)  # first warm-up step of the new leg
    assert leg_lr(tc, 109) == pytest.approx(1e-3)  # peak
    assert leg_lr(tc, 200) == pytest.approx(5e-5)  # decayed to 5% at the end
    assert leg_lr(tc, 50) == leg_lr(tc, 100)  # before the leg: its first value, never negative
    plain = TrainConfig(steps=200, warmup=10, lr=1e-3)
    assert [leg_lr(plain, s) for s in (0, 9, 150)] == [lr_at(s, 200, 1e-3, 10) for s in (0, 9, 150)]


def test_a_codec_setting_trains_a_model_with_that_codec(tiny_data, tmp_path):
    run(_config(tiny_data, tmp_path / "run", codec="temporal=1"))
    model, _ = load_checkpoint(tmp_path / "run" / "model")
    assert model.cfg.codec.temporal == 1
    # one frame per latent frame: a chunk of 2 frames is 2 latent frames, not 1
    assert model.cfg.latent_frames == preset("tiny").chunk_frames == 2
    with pytest.raises(ValueError, match="started with --codec 'temporal=1'"):
        run(_config(tiny_data, tmp_path / "run", steps=6))  # resumed without it
    with pytest.raises(ValueError, match="KEY=VALUE"):
        run(_config(tiny_data, tmp_path / "bad", codec="frames=2"))


def test_a_run_recorded_before_a_codec_field_existed_resumes(tiny_data, tmp_path):
    out = tmp_path / "run"
    run(_config(tiny_data, out, steps=2))
    file = out / "progress.json"
    progress = json.loads(file.read_text())
    assert progress["codec_setting"].endswith(",decoder_blocks=0")
    progress["codec_setting"] = progress["codec_setting"].removesuffix(",decoder_blocks=0")
    file.write_text(json.dumps(progress))  # as a run started before decoder_blocks recorded it
    run(_config(tiny_data, out, steps=4))
    assert load_checkpoint(out / "model")[1]["step"] == 4
    with pytest.raises(ValueError, match="decoder_blocks=1"):
        run(_config(tiny_data, out, steps=6, codec="decoder_blocks=1"))


def test_every_zero_means_never_and_the_last_step_still_saves(tiny_data, tmp_path):
    out = tmp_path / "a"
    run(_config(tiny_data, out, steps=3, eval_every=0, save_every=0))
    assert load_checkpoint(out / "model")[1]["step"] == 3
    phases = {
        json.loads(line)["phase"] for line in (out / "metrics.jsonl").read_text().splitlines()
    }
    assert "denoiser" in phases and "eval" not in phases


@dataclass
class _Flags:
    # what a run reads;
    # two lines of it
    data: str = ""  # and after it
    steps: int = 3

    # a section's heading, a blank line above its first field

    rate: float = 0.5  # 5% of it


def test_each_flag_says_what_the_config_source_says_of_its_field():
    parser = config_parser(_Flags, "prog", None)
    helps = {a.dest: a.help for a in parser._actions}
    assert helps["data"] == "what a run reads; two lines of it and after it (default: '')"
    assert helps["steps"] == "(default: 3)"
    assert helps["rate"] == "5%% of it (default: 0.5)"  # argparse's escape: printed as 5%
    assert "5% of it (default: 0.5)" in parser.format_help()


@pytest.mark.parametrize(
    ("phases", "width"), [(("codec", "denoiser", "eval"), 1188), (("denoiser", "eval"), 792)]
)
def test_the_plot_has_one_panel_per_phase_logged(tmp_path, phases, width):
    """A run from a checkpoint with no codec steps gets no empty codec panel: 4.4 inches at 90
    dpi a panel."""
    rows = [
        {"phase": p, "step": s, "loss": 1.0 / (s + 1), "pred_from_noise_db": 20.0 + s,
         "copy_last_db": 12.0}
        for p in phases for s in range(3)
    ]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    png = plot_metrics(tmp_path)
    assert png is not None
    assert int.from_bytes(png.read_bytes()[16:20], "big") == width  # the PNG header's width
