"""Text encoders: the self-contained default and a frozen pretrained one behind the same protocol."""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from world.core.checkpoint import load_checkpoint, save_checkpoint
from world.core.config import ModelConfig, preset
from world.core.config_check import MAX_WORDS
from world.core.model import WorldModel
from world.core.text import (
    MAX_KNOWN,
    FrozenTextEncoder,
    HashTextEncoder,
    load_backend,
    unread,
    vocabulary,
)

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


# --- spelling the words training never saw ----------------------------------------------------


def knowing(words: tuple[str, ...], seed: int = 0) -> WorldModel:
    """The tiny model of ``seed`` whose encoder knows ``words``."""
    torch.manual_seed(seed)
    cfg = preset("tiny")
    return WorldModel(cfg.replace(text=replace(cfg.text, known_words=words)))


KNOWN = ("night", "rain", "snow", "the", "walls", "red")


def test_known_words_encode_as_they_always_did():
    # the list changes nothing for the words in it: their buckets, bit for bit
    before, after = knowing(()), knowing(KNOWN)
    assert all(
        torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters(), strict=True)
    )
    with torch.no_grad():
        for caption in ("night, rain", "the walls red", None, "snow snow"):
            a, ma = before.encode_text([caption])
            b, mb = after.encode_text([caption])
            assert torch.equal(a, b) and torch.equal(ma, mb)


def test_a_word_sharing_no_spelling_adds_only_its_position():
    model = knowing(KNOWN)
    enc = model.text
    assert isinstance(enc, HashTextEncoder)
    with torch.no_grad():
        tokens, _ = model.encode_text(["night xq"])
        x, mask = enc.embed_words(["night"])
        by_hand = enc(
            torch.cat([x, torch.zeros(1, 1, enc.dim)], 1), torch.ones(1, 3, dtype=torch.bool)
        )
    assert torch.equal(tokens, by_hand)


def test_a_new_word_takes_the_direction_of_the_known_words_it_is_spelled_like():
    model = knowing(KNOWN)
    enc = model.text
    assert isinstance(enc, HashTextEncoder)
    spell = enc.speller()
    bucket = {w: enc.embed.weight[enc.ids([w])[0][0, 1]].detach().double().numpy() for w in KNOWN}
    norm = np.mean([np.linalg.norm(v) for v in bucket.values()])
    for new, like in (("rainy", "rain"), ("nighttime", "night"), ("snowy", "snow")):
        v = spell(new)
        assert np.linalg.norm(v) == pytest.approx(norm)
        cos = {w: v @ b / np.linalg.norm(v) / np.linalg.norm(b) for w, b in bucket.items()}
        assert max(cos, key=cos.__getitem__) == like, cos
    # within the fit's ridge, a known word is spelled as its own vector
    for w, b in bucket.items():
        v = spell(w)
        assert v @ b / np.linalg.norm(v) / np.linalg.norm(b) > 0.99


def test_the_spelling_follows_the_weights_as_they_train():
    model = knowing(KNOWN)
    with torch.no_grad():
        a, _ = model.encode_text(["rainy"])
        model.text.embed.weight.mul_(2.0)
        b, _ = model.encode_text(["rainy"])
    assert not torch.equal(a, b)  # fitted again to the changed vectors


def test_spelled_captions_batch_as_they_encode_alone():
    model = knowing(KNOWN)
    captions = ["a drizzle at night", None, "rainy walls", "red"]
    with torch.no_grad():
        together, mask = model.encode_text(captions)
        for i, c in enumerate(captions):
            alone, m = model.encode_text([c])
            n = m.shape[1]
            assert torch.equal(mask[i, :n], m[0])
            torch.testing.assert_close(together[i, :n], alone[0])


def test_known_words_round_trip_and_bad_lists_are_refused(tmp_path):
    model = knowing(KNOWN)
    save_checkpoint(model, tmp_path / "m")
    loaded, _ = load_checkpoint(tmp_path / "m")
    assert loaded.cfg.text.known_words == KNOWN
    model.eval(), loaded.eval()  # the encoder's layers take another kernel path in training
    with torch.no_grad():
        assert torch.equal(
            model.encode_text(["rainy dusk"])[0], loaded.encode_text(["rainy dusk"])[0]
        )
    doc = model.cfg.to_dict()
    too_many = [f"w{i}" for i in range(MAX_KNOWN + 1)]
    for bad in (["Rain"], ["rain", "rain"], ["two words"], "rain", [3], too_many):
        doc["text"]["known_words"] = bad
        with pytest.raises(ValueError, match="text.known_words.*distinct words"):
            ModelConfig.from_dict(doc)


def test_vocabulary_is_the_sorted_words_of_the_captions_and_of_the_model_before():
    assert MAX_KNOWN == MAX_WORDS  # what training records, the config check accepts
    caps = ["Night, two balls!", "", None, "make it rain", "night"]
    assert vocabulary(caps) == ("balls", "it", "make", "night", "rain", "two")
    assert vocabulary(["rain"], also=("dusk",)) == ("dusk", "rain")
    # past the limit the source model's words stay, then the most frequent of the captions
    many = [f"w{i}" for i in range(MAX_KNOWN)]
    kept = vocabulary(many + ["w0"] * 3 + ["w1"] * 2, also=("dusk",))
    assert len(kept) == MAX_KNOWN and {"dusk", "w0", "w1"} <= set(kept)


def test_know_takes_only_other_known_words():
    enc = knowing(()).text
    assert isinstance(enc, HashTextEncoder)
    enc.know(replace(enc.cfg, known_words=KNOWN))
    assert enc.known == frozenset(KNOWN)
    with pytest.raises(ValueError, match="only known_words"):
        enc.know(replace(enc.cfg, known_words=KNOWN, dim=enc.cfg.dim + 1))


def test_unread_words_are_those_sharing_no_spelling_with_the_known():
    # "rainy" is spelled from "rain"; "dusk", "xq" and "and" share no n-gram with KNOWN
    assert unread("The rainy dusk, xq and rain and dusk", KNOWN) == ["dusk", "xq", "and"]
    assert unread("rainy dusk", ()) == []  # without a list every word reads its bucket
    spell = knowing(KNOWN).text.speller()
    assert not spell("dusk").any() and spell("rainy").any()  # what the spelling gives them
