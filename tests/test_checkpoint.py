"""Checkpoints: exact round trip, and every documented corruption raises CheckpointError."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import sdk.models
from sdk import Session
from world.core.checkpoint import (
    DEFAULT_DIR,
    CheckpointError,
    load_checkpoint,
    read_config,
    save_checkpoint,
)


@pytest.fixture()
def saved(tmp_path, tiny_model):
    return save_checkpoint(tiny_model, tmp_path / "ckpt")


def test_round_trip_exact(saved, tiny_model):
    model, doc = load_checkpoint(saved)
    assert doc["format_version"] == 1 and model.cfg == tiny_model.cfg
    a, b = tiny_model.state_dict(), model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _rewrite_weights(path, change):
    tensors = load_file(str(path / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(path / "model.safetensors"))


def test_missing_key(saved):
    _rewrite_weights(saved, lambda t: t.pop(next(iter(t))))
    with pytest.raises(CheckpointError, match="missing keys"):
        load_checkpoint(saved)


def test_unexpected_key(saved):
    _rewrite_weights(saved, lambda t: t.__setitem__("extra.weight", torch.zeros(1)))
    with pytest.raises(CheckpointError, match=r"unexpected keys \['extra.weight'\]"):
        load_checkpoint(saved)


def test_shape_mismatch(saved):
    def change(t):
        t["denoiser.out.bias"] = torch.zeros(7)

    _rewrite_weights(saved, change)
    with pytest.raises(CheckpointError, match="denoiser.out.bias has shape"):
        load_checkpoint(saved)


@pytest.mark.parametrize("dtype", [torch.float64, torch.int32])
def test_dtype_mismatch(saved, dtype):
    def change(t):
        t["denoiser.out.bias"] = t["denoiser.out.bias"].to(dtype)

    _rewrite_weights(saved, change)
    with pytest.raises(CheckpointError, match="denoiser.out.bias has dtype"):
        load_checkpoint(saved)


def test_half_storage_rounds_what_autocast_rounds_and_plays_the_same_frames(
    tmp_path, tiny_model, saved
):
    half = save_checkpoint(tiny_model, tmp_path / "half", half=True)
    stored = load_file(str(half / "model.safetensors"))
    rounded = {k for k, v in stored.items() if v.dtype == torch.bfloat16}
    assert "denoiser.out.weight" in rounded and "codec.decoder.out.bias" in rounded
    assert not any(k.startswith(("codec.encoder.", "text.")) for k in rounded)
    assert all(stored[k].dtype == torch.float32 for k in set(stored) - rounded)
    assert (half / "model.safetensors").stat().st_size < (
        saved / "model.safetensors"
    ).stat().st_size
    model, _ = load_checkpoint(half)
    for k, v in tiny_model.state_dict().items():
        want = v.to(torch.bfloat16).float() if k in rounded else v
        assert model.state_dict()[k].dtype == torch.float32
        assert torch.equal(model.state_dict()[k], want), k
    frames = []
    for m in (tiny_model, model):  # under bf16 autocast the frames are the same, bit for bit
        s = Session.from_model(m, seed=4, precision="bf16")
        frames.append(
            [s.reset(prompt="night").frames, *(s.step(a).frames for a in ("right", "fire"))]
        )
    for a, b in zip(*frames, strict=True):
        assert np.array_equal(a, b)


def test_a_float16_weight_is_widened(saved, tiny_model):
    _rewrite_weights(
        saved, lambda t: t.__setitem__("denoiser.out.bias", t["denoiser.out.bias"].half())
    )
    model, _ = load_checkpoint(saved)
    want = tiny_model.state_dict()["denoiser.out.bias"].half().float()
    assert torch.equal(model.state_dict()["denoiser.out.bias"], want)


def test_unknown_format_version(saved):
    doc = json.loads((saved / "config.json").read_text())
    doc["format_version"] = 99
    (saved / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="format_version 99 is not supported"):
        load_checkpoint(saved)


def test_config_mismatching_weights(saved):
    doc = json.loads((saved / "config.json").read_text())
    doc["model"]["denoiser"]["dim"] = 128
    (saved / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(saved)


def test_unknown_config_key(saved):
    doc = json.loads((saved / "config.json").read_text())
    doc["model"]["codec"]["colour"] = 1
    (saved / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="unknown codec config keys"):
        load_checkpoint(saved)


@pytest.mark.parametrize(
    ("key", "neutral", "other"), [("action_counts", False, True), ("x0_from", 0.0, 0.9)]
)
def test_a_removed_experiments_field_loads_at_its_neutral_value_only(
    saved, tiny_model, key, neutral, other
):
    """Configs written before an experiment was removed (docs/experiments.md) carry its field at
    the value that changed nothing: they load as the model they are. Any other value is a model
    this code cannot run, refused with the commit that can."""
    doc = json.loads((saved / "config.json").read_text())
    assert key not in doc["model"]["denoiser"]
    doc["model"]["denoiser"][key] = neutral
    (saved / "config.json").write_text(json.dumps(doc))
    model, _ = load_checkpoint(saved)
    assert model.cfg == tiny_model.cfg
    assert sdk.models.fingerprint(model) == sdk.models.fingerprint(tiny_model)
    doc["model"]["denoiser"][key] = other
    (saved / "config.json").write_text(json.dumps(doc))
    with pytest.raises(
        CheckpointError,
        match=rf"denoiser.{key}={other}: .*removed in chunkworld 0.2.0.*git checkout [0-9a-f]{{7}}",
    ):
        load_checkpoint(saved)


@pytest.mark.parametrize("keep", [0, 8, 100, -100])
def test_truncated_weights(saved, keep):
    f = saved / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(saved)


def test_corrupt_header(saved):
    f = saved / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[8:20] = b"\xff" * 12
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(saved)


def test_missing_files(tmp_path, saved):
    with pytest.raises(CheckpointError, match="config.json: missing"):
        load_checkpoint(tmp_path / "nowhere")
    (saved / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing weights"):
        load_checkpoint(saved)


def test_not_json(saved):
    (saved / "config.json").write_text("{nope")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(saved)


def test_default_names_the_shipped_model_from_any_directory(tmp_path, monkeypatch):
    """``"default"`` is the shipped model wherever the command runs, as the CLI help says."""
    monkeypatch.chdir(tmp_path)  # no ./default here
    cfg, doc = read_config("default")
    model, doc2 = load_checkpoint("default")
    assert model.cfg == cfg and doc2["step"] == doc["step"]
    assert (DEFAULT_DIR / "config.json").is_file()
    with pytest.raises(CheckpointError, match="config.json: missing"):
        load_checkpoint("./default")  # a path is taken as a path


def test_a_shipped_world_loads_by_its_name_and_a_path_stays_a_path(tmp_path, monkeypatch, saved):
    import shutil

    import world.core.checkpoint as ck

    shipped = tmp_path / "models"
    shutil.copytree(saved, shipped / "cave")
    (shipped / "empty").mkdir()  # a directory without a checkpoint is not a shipped world
    monkeypatch.setattr(ck, "MODELS_DIR", shipped)
    monkeypatch.chdir(tmp_path)
    assert ck.shipped_models() == ["cave"]
    assert ck.checkpoint_dir("cave") == shipped / "cave"
    assert ck.checkpoint_dir("./cave") == tmp_path.joinpath("cave").relative_to(tmp_path)
    assert sdk.models.model_names()[:2] == ["default", "cave"]
    loaded = sdk.models.load_model("cave")
    assert loaded.trained and loaded.model.cfg == load_checkpoint(saved)[0].cfg
    with pytest.raises(sdk.models.UnknownModelError, match="'./cave'"):
        sdk.models.load_model("./cave")  # no ./cave here
