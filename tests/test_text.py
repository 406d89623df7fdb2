"""Text encoders: the self-contained default and a frozen pretrained one behind the same protocol."""

from __future__ import annotations

import sys

import pytest
import torch

from world.core.checkpoint import load_checkpoint, save_checkpoint
from world.core.config import ModelConfig, preset
from world.core.model import WorldModel
from world.core.text import FrozenTextEncoder, HashTextEncoder, load_backend

WIDTH = 24  # the fake sentence model's width (tests/conftest.py)


def frozen_config() -> ModelConfig:
    cfg = preset("tiny")
    return cfg.replace(
        text=cfg.text.__class__(
            **{**cfg.text.__dict__, "encoder": "sentence-transformers:fake", "frozen_dim": WIDTH}
        )
    )


def frozen_model(backend) -> WorldModel:
    torch.manual_seed(0)
    model = WorldModel(frozen_config())
    assert isinstance(model.text, FrozenTextEncoder)
    model.text.backend = backend
    return model


def test_default_is_the_hash_encoder_with_a_summary_token():
    model = WorldModel(preset("tiny"))
    assert isinstance(model.text, HashTextEncoder)
    tokens, mask = model.encode_text(["night, two balls", None])
    assert tokens.shape == (2, 4, model.cfg.text.dim)  # summary + three words
    assert mask.tolist() == [[True] * 4, [True, False, False, False]]


def test_frozen_encoder_shapes_null_caption_and_memo(fake_sentence_model):
    backend = fake_sentence_model()
    model = frozen_model(backend)
    tokens, mask = model.encode_text(["night", None, "rain", "night"])
    assert tokens.shape == (4, 2, model.cfg.text.dim)
    assert mask.tolist() == [[True, True], [True, False], [True, True], [True, True]]
    assert backend.calls == [["night", "rain"]]  # each distinct caption once, null never
    torch.testing.assert_close(tokens[0], tokens[3])
    model.encode_text(["rain", "snow"])
    assert backend.calls[-1] == ["snow"]  # memoised: only the new caption reaches the backend


def test_frozen_encoder_trains_only_its_adapter_and_round_trips(tmp_path, fake_sentence_model):
    backend = fake_sentence_model()
    model = frozen_model(backend)
    names = {n for n, _ in model.text.named_parameters()}
    assert names == {"summary", "proj.weight", "proj.bias", "norm.weight", "norm.bias"}
    tokens, _ = model.encode_text(["night", "day"])
    tokens.pow(2).sum().backward()
    assert model.text.proj.weight.grad is not None
    assert float(model.text.proj.weight.grad.abs().sum()) > 0

    save_checkpoint(model, tmp_path / "m")
    loaded, _ = load_checkpoint(tmp_path / "m")
    assert isinstance(loaded.text, FrozenTextEncoder)
    assert loaded.cfg.text.encoder == "sentence-transformers:fake"
    loaded.text.backend = fake_sentence_model()
    with torch.no_grad():
        a, _ = model.encode_text(["night, snow"])
        b, _ = loaded.encode_text(["night, snow"])
    assert torch.equal(a, b)


def test_frozen_encoder_width_mismatch_is_named(fake_sentence_model):
    model = frozen_model(fake_sentence_model(width=WIDTH + 1))
    with pytest.raises(ValueError, match=f"frozen_dim={WIDTH}"):
        model.encode_text(["night"])


def test_unknown_text_encoder_is_refused():
    cfg = preset("tiny")
    with pytest.raises(ValueError, match="sentence-transformers:<name or path>"):
        cfg.replace(text=cfg.text.__class__(**{**cfg.text.__dict__, "encoder": "t5-large"}))


def test_missing_optional_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install 'chunkworld\[text\]'"):
        load_backend("sentence-transformers:all-MiniLM-L6-v2")
