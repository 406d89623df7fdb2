"""Training: one short run end to end (tiny preset, tiny data), resuming, and DDP with two CPU
processes under torchrun whose weights stay identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from world.checkpoint import CheckpointError, load_checkpoint, load_matching, save_checkpoint
from world.codec import codec_setting, codec_text
from world.config import preset
from world.datagen import generate_dataset
from world.model import WorldModel
from world.train import TrainConfig, run
from world.train_codec import codec_step
from world.trainkit import (
    codec_leg_lr,
    config_parser,
    leg_lr,
    load_arrays,
    lr_at,
    parse_config,
)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train"
    generate_dataset(path, n_clips=12, clip_frames=16, chunk_frames=2, size=32, progress=False)
    return path


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
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["phase"] for r in rows} >= {"codec", "denoiser", "eval"}
    assert all(r["loss"] == r["loss"] for r in rows if "loss" in r)  # no NaN
    # resume: asking for more steps continues from step 4, not from scratch
    run(_config(tiny_data, out, steps=6))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    den = [r["step"] for r in rows if r["phase"] == "denoiser"]
    assert den.count(0) == 1 and max(den) <= 5
    assert load_checkpoint(out / "model")[1]["step"] == 6


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


def test_a_run_started_from_a_model_is_that_model_before_it_trains(tiny_data, tmp_path):
    run(_config(tiny_data, tmp_path / "a"))
    source, _ = load_checkpoint(tmp_path / "a" / "model")
    # fine-tuning on other data (another game, say): same format, other frames
    other = tmp_path / "other"
    generate_dataset(
        other, n_clips=12, clip_frames=16, chunk_frames=2, size=32, seed=7, progress=False
    )
    init = str(tmp_path / "a" / "model")
    run(_config(other, tmp_path / "b", init_from=init, codec_steps=0, steps=0))
    started, _ = load_checkpoint(tmp_path / "b" / "model")
    want = source.state_dict()
    assert all(torch.equal(v, want[n]) for n, v in started.state_dict().items())
    # the codec came whole, so the latent scale its denoiser was trained at stays, although the
    # other data's latents (scaled by it) no longer have unit standard deviation
    scale = source.cfg.codec.latent_scale
    assert started.cfg.codec.latent_scale == scale
    frames = load_arrays(other, source.cfg).frames[:16, : source.cfg.chunk_frames * 4]
    with torch.no_grad():
        std = float(source.codec.encode(torch.from_numpy(frames)).std())
    assert abs(std - 1.0) > 1e-3
    # and a fine-tuning run goes on from there like any other
    run(_config(other, tmp_path / "b", init_from=init, steps=2))
    tuned, doc = load_checkpoint(tmp_path / "b" / "model")
    assert doc["step"] == 2
    tuned_w = tuned.state_dict()
    assert any(not torch.equal(tuned_w[n], want[n]) for n in want if n.startswith("denoiser."))


def test_init_from_takes_the_weights_that_fit_and_leaves_the_rest(tmp_path):
    torch.manual_seed(0)
    source = WorldModel(preset("tiny"))
    save_checkpoint(source, tmp_path / "src")
    more = preset("tiny").replace(actions=(*preset("tiny").actions, "jump"))
    torch.manual_seed(1)
    model = WorldModel(more)
    before = {n: v.clone() for n, v in model.state_dict().items()}
    taken, kept, cfg = load_matching(model, tmp_path / "src")
    assert kept == ["denoiser.action_emb.weight"] and cfg.name == "tiny"
    assert len(taken) == len(before) - 1
    now, want = model.state_dict(), source.state_dict()
    assert all(torch.equal(now[n], want[n]) for n in taken)
    assert torch.equal(now["denoiser.action_emb.weight"], before["denoiser.action_emb.weight"])


@pytest.mark.parametrize(("old", "new"), [(2, 1), (1, 2)])
def test_init_from_another_temporal_factor_keeps_still_scenes_and_held_actions(tmp_path, old, new):
    tiny = preset("tiny")
    torch.manual_seed(0)
    source = WorldModel(tiny.replace(codec=replace(tiny.codec, temporal=old))).eval()
    save_checkpoint(source, tmp_path / "src")
    model = WorldModel(tiny.replace(codec=replace(tiny.codec, temporal=new))).eval()
    taken, kept, _ = load_matching(model, tmp_path / "src")
    assert kept == [] and len(taken) == len(source.state_dict())
    still = torch.randint(0, 256, (1, 1, 32, 32, 3), dtype=torch.uint8).repeat(1, 2, 1, 1, 1)
    with torch.no_grad():
        z_old, z_new = source.codec.encode(still), model.codec.encode(still)
        # the same latent per latent frame: a still scene means what it meant before
        torch.testing.assert_close(z_new[:, :1], z_old[:, :1], atol=1e-5, rtol=1e-4)
        # the new decoder draws each frame as the old decoder's mean frame of that latent
        drawn_old = source.codec.decode_unit(z_old[:, :1]).mean(1, keepdim=True)
        drawn_new = model.codec.decode_unit(z_old[:, :1])
        torch.testing.assert_close(drawn_new, drawn_old.expand_as(drawn_new), atol=1e-5, rtol=1e-4)

        # and a held action gives the denoiser the condition it gave before
        def held(m: WorldModel, k: int) -> torch.Tensor:
            emb = m.denoiser.action_emb(torch.full((k,), 3)).flatten()
            return m.denoiser.action_proj(emb)

        torch.testing.assert_close(held(model, new), held(source, old), atol=1e-5, rtol=1e-4)


def test_a_run_from_a_model_takes_its_codec_setting_unless_codec_names_another(tiny_data, tmp_path):
    tiny = preset("tiny")
    torch.manual_seed(0)
    source = WorldModel(tiny.replace(codec=replace(tiny.codec, temporal=1, latent_scale=0.5)))
    save_checkpoint(source, tmp_path / "src")
    init = str(tmp_path / "src")
    # no --codec: the fine-tuned model has the source's one frame per latent frame, all weights
    run(_config(tiny_data, tmp_path / "a", init_from=init, codec_steps=0, steps=0))
    started, _ = load_checkpoint(tmp_path / "a" / "model")
    assert started.cfg.codec == source.cfg.codec  # latent scale too: the codec came whole
    want = source.state_dict()
    assert all(torch.equal(v, want[n]) for n, v in started.state_dict().items())
    # --codec goes on top of the source's setting: back to the preset's two, refolded
    run(
        _config(
            tiny_data, tmp_path / "b", init_from=init, codec="temporal=2", codec_steps=0, steps=0
        )
    )
    folded, _ = load_checkpoint(tmp_path / "b" / "model")
    assert folded.cfg.codec == replace(source.cfg.codec, temporal=2)
    w = folded.state_dict()["codec.encoder.stem.weight"]
    assert w.shape[1] == 2 * want["codec.encoder.stem.weight"].shape[1]
    # resumed without --init-from, the run would get the preset's codec: refused, with the fix
    with pytest.raises(ValueError, match="started with --codec ''.*temporal=1.*--init-from"):
        run(_config(tiny_data, tmp_path / "a", steps=2))
    run(_config(tiny_data, tmp_path / "a", init_from=init, steps=2))  # as it started: resumes
    assert load_checkpoint(tmp_path / "a" / "model")[1]["step"] == 2


def test_a_run_from_a_model_with_no_codec_steps_resumes(tiny_data, tmp_path):
    run(_config(tiny_data, tmp_path / "src"))
    init = str(tmp_path / "src" / "model")
    source, _ = load_checkpoint(init)
    out = tmp_path / "a"
    run(_config(tiny_data, out, init_from=init, codec_steps=0, steps=2))
    assert codec_step(out) == 0  # the run keeps the codec it took, at no steps of its own
    run(_config(tiny_data, out, init_from=init, codec_steps=0, steps=4))  # a second leg
    resumed, doc = load_checkpoint(out / "model")
    assert doc["step"] == 4
    want = source.state_dict()
    assert all(torch.equal(v, want[n]) for n, v in resumed.state_dict().items() if "codec." in n)
    # a run directory of an earlier version, without that codec state, resumes from its source
    (out / "codec_state.safetensors").unlink()
    run(_config(tiny_data, out, init_from=init, codec_steps=0, steps=6))
    assert load_checkpoint(out / "model")[1]["step"] == 6
    with pytest.raises(ValueError, match="holds no codec state.*--init-from.*--codec-steps"):
        run(_config(tiny_data, out, codec_steps=0, steps=8))


def test_a_deeper_run_from_a_model_starts_as_that_model(tiny_data, tmp_path):
    from test_core import _forward, _inputs

    torch.manual_seed(0)
    source = WorldModel(preset("tiny"))  # two denoiser blocks
    for p in source.denoiser.parameters():  # trained-looking weights: gates open, nothing zero
        p.data.add_(0.05 * torch.randn_like(p))
    save_checkpoint(source, tmp_path / "src")
    init = str(tmp_path / "src")
    run(_config(tiny_data, tmp_path / "a", init_from=init, depth=3, codec_steps=0, steps=0))
    deeper, _ = load_checkpoint(tmp_path / "a" / "model")
    assert len(deeper.denoiser.blocks) == 3
    inputs = _inputs(source, 3)
    for n_context in (0, 1):  # the third block, gates shut, passes its input through
        assert torch.equal(
            _forward(deeper, *inputs, n_context=n_context),
            _forward(source, *inputs, n_context=n_context),
        )
    with pytest.raises(ValueError, match="--depth -1: give the denoiser's blocks"):
        run(_config(tiny_data, tmp_path / "c", depth=-1))
    with pytest.raises(ValueError, match="started with 3 denoiser blocks.*--depth 3"):
        run(_config(tiny_data, tmp_path / "a", init_from=init, steps=2))
    run(_config(tiny_data, tmp_path / "a", init_from=init, depth=3, steps=2))
    trained, doc = load_checkpoint(tmp_path / "a" / "model")
    assert doc["step"] == 2
    dim = trained.cfg.denoiser.dim
    gates = trained.denoiser.blocks[2].mod.bias.detach()[2 * dim : 3 * dim]
    assert gates.abs().max() > 0  # training opens them


def test_a_run_with_more_key_value_heads_from_a_model_starts_as_that_model(tiny_data, tmp_path):
    from test_core import _forward, _inputs

    torch.manual_seed(0)
    source = WorldModel(preset("tiny"))  # four query heads, two key/value heads
    for p in source.denoiser.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    save_checkpoint(source, tmp_path / "src")
    init = str(tmp_path / "src")
    run(_config(tiny_data, tmp_path / "a", init_from=init, kv_heads=4, codec_steps=0, steps=0))
    wide, _ = load_checkpoint(tmp_path / "a" / "model")
    assert wide.cfg.denoiser.kv_heads == 4 and source.cfg.denoiser.kv_heads == 2
    assert (
        wide.denoiser.blocks[0].kv.weight.shape[0]
        == 2 * source.denoiser.blocks[0].kv.weight.shape[0]
    )
    inputs = _inputs(source, 3)
    for n_context in (0, 1):  # every new head a copy of the one its query heads used
        assert torch.allclose(
            _forward(wide, *inputs, n_context=n_context),
            _forward(source, *inputs, n_context=n_context),
            atol=1e-5,
        )
    with pytest.raises(ValueError, match="--kv-heads 3: .* 4 query heads.*divisor of 4"):
        run(_config(tiny_data, tmp_path / "c", kv_heads=3))
    with pytest.raises(ValueError, match="--kv-heads -1"):
        run(_config(tiny_data, tmp_path / "c", kv_heads=-1))
    with pytest.raises(ValueError, match="started with 4 key/value heads.*--kv-heads 4"):
        run(_config(tiny_data, tmp_path / "a", init_from=init, steps=2))
    run(_config(tiny_data, tmp_path / "a", init_from=init, kv_heads=4, steps=2))
    assert load_checkpoint(tmp_path / "a" / "model")[1]["step"] == 2


def test_a_run_with_action_counts_from_a_model_starts_as_that_model(tiny_data, tmp_path):
    from test_core import _forward, _inputs

    torch.manual_seed(0)
    source = WorldModel(preset("tiny"))
    for p in source.denoiser.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    save_checkpoint(source, tmp_path / "src")
    init = str(tmp_path / "src")
    run(
        _config(
            tiny_data, tmp_path / "a", init_from=init, action_counts=True, codec_steps=0, steps=0
        )
    )
    counted, _ = load_checkpoint(tmp_path / "a" / "model")
    assert counted.cfg.denoiser.action_counts and not source.cfg.denoiser.action_counts
    inputs = _inputs(source, 3)
    for n_context in (0, 1):  # the count layer starts at zero
        assert torch.equal(
            _forward(counted, *inputs, n_context=n_context),
            _forward(source, *inputs, n_context=n_context),
        )
    with pytest.raises(ValueError, match="started with action counts.*with --action-counts"):
        run(_config(tiny_data, tmp_path / "a", init_from=init, steps=2))
    run(_config(tiny_data, tmp_path / "a", init_from=init, action_counts=True, steps=2))
    trained, _ = load_checkpoint(tmp_path / "a" / "model")
    assert trained.denoiser.count_proj.weight.abs().max() > 0  # training moves it


@pytest.mark.parametrize("name", ["tiny", "small", "base", "large"])
def test_codec_text_is_the_inverse_of_codec_setting(name):
    codec = replace(preset(name).codec, temporal=1, latent_scale=0.25)
    assert codec_setting(codec_text(codec), preset("small").codec) == replace(
        codec, latent_scale=preset("small").codec.latent_scale
    )


def test_init_from_a_checkpoint_that_fits_nothing_is_refused(tmp_path):
    save_checkpoint(WorldModel(preset("tiny")), tmp_path / "src")
    save_file({"unrelated.weight": torch.zeros(3)}, str(tmp_path / "src" / "model.safetensors"))
    with pytest.raises(CheckpointError, match="name='tiny'"):
        load_matching(WorldModel(preset("tiny")), tmp_path / "src")


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
    import world.rollout

    monkeypatch.setattr(world.rollout, "find_player", lambda frame: (12.0, 13.0))
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
    monkeypatch.setattr("world.train.load_backend", lambda spec: fake)
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
    with pytest.raises(ValueError, match="--size 32 --chunk 2"):
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
