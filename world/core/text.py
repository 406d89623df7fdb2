"""Text encoders: a caption -> a short sequence of tokens for cross-attention.

The interface is the ``TextEncoder`` protocol: ``encode(captions) -> (tokens, mask)``. The
default, ``HashTextEncoder``, is self-contained (no downloads): words are hashed into buckets,
embedded and passed through a small transformer trained with the world model. A frozen
pretrained sentence encoder (MAGI-1 uses a frozen T5) fits the same protocol:
``FrozenTextEncoder``, chosen by ``TextConfig.encoder = "sentence-transformers:<name or path>"``
(optional extra ``chunkworld[text]``; the model must be installed locally).

Every encoding starts with one summary token, so the null caption ("" or None) is a sequence of
one token and cross-attention never sees an empty key set.

Words the hashed encoder never trained on are spelled (:class:`Speller`): with
``TextConfig.known_words`` (training records them), a word outside that list takes a vector
built from the character n-grams it shares with the known words, fitted to their trained
vectors; a word that shares none adds nothing but its position. "rainy" borrows from "rain",
"nighttime" from "night", "thunderstorm" from "storm" (docs/training-log.md, 2026-12-07).
"""

from __future__ import annotations

import os
import re
import zlib
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch import nn

from world.core.config import TextConfig

_WORD = re.compile(r"[a-z0-9]+")


def words(caption: str | None) -> list[str]:
    """Lower-case alphanumeric words of a caption: ``words("Night, 2 balls!") == ["night", "2", "balls"]``."""
    return _WORD.findall((caption or "").lower())


class TextEncoder(Protocol):
    dim: int

    def encode(self, captions: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns tokens (B, L, dim) float and mask (B, L) bool (True = a real token)."""
        ...


GRAMS = (3, 5)  # character n-grams of a word, with "<" and ">" at its ends, 3 to 5 long
RIDGE = 0.1  # the fit's ridge on the known words' kernel


def grams(word: str) -> list[str]:
    """The character n-grams a word is spelled by: ``grams("sky")`` is ``["<sk", "sky", "ky>",
    "<sky", "sky>", "<sky>"]``."""
    s = f"<{word}>"
    lo, hi = GRAMS
    return [s[i : i + n] for n in range(lo, hi + 1) for i in range(len(s) - n + 1)]


class Speller:
    """Vectors for words outside ``known``, from the n-grams they share with it.

    The fit: one vector per n-gram of the known words, the ridge solution (least norm) to
    "a known word's vector = the sum of its n-grams' vectors over its n-gram count". A new word
    takes the same sum over the n-grams it shares (over all its n-grams), scaled to the known
    words' mean norm: the share of spelling it has in common sets the direction, not the
    strength. A word sharing no n-gram is the zero vector.
    """

    def __init__(self, known: tuple[str, ...], vectors: torch.Tensor) -> None:
        self.index: dict[str, int] = {}
        for w in known:
            for g in grams(w):
                self.index.setdefault(g, len(self.index))
        x = np.zeros((len(known), len(self.index)))
        for i, w in enumerate(known):
            gs = grams(w)
            for g in gs:
                x[i, self.index[g]] += 1.0 / len(gs)
        t = vectors.detach().double().cpu().numpy()
        kernel = x @ x.T + RIDGE * np.eye(len(known))
        self.table = x.T @ np.linalg.solve(kernel, t)  # (n-grams, dim)
        self.norm = float(np.linalg.norm(t, axis=1).mean())

    def __call__(self, word: str) -> np.ndarray:
        gs = grams(word)
        rows = [self.index[g] for g in gs if g in self.index]
        v = self.table[rows].sum(0) / len(gs) if rows else np.zeros(self.table.shape[1])
        n = float(np.linalg.norm(v))
        return v * (self.norm / n) if n > 0 else v


def unread(caption: str | None, known: tuple[str, ...]) -> list[str]:
    """The words of ``caption`` a model knowing ``known`` reads as nothing: outside ``known`` and
    sharing no n-gram with any of them (:class:`Speller` gives them the zero vector), in order,
    once each. Empty when ``known`` is (every word then reads its own bucket)."""
    if not known:
        return []
    seen = _known_grams(known)
    out = [w for w in words(caption) if w not in seen and not any(g in seen for g in grams(w))]
    return list(dict.fromkeys(out))


@lru_cache(maxsize=8)
def _known_grams(known: tuple[str, ...]) -> frozenset[str]:
    """The known words and their n-grams, in one set (a word is never a gram: grams carry < or >)."""
    return frozenset(known) | frozenset(g for w in known for g in grams(w))


MAX_KNOWN = 4096  # known words kept (the most frequent): the fit solves a system of this size


def vocabulary(captions: Iterable[str | None], also: Iterable[str] = ()) -> tuple[str, ...]:
    """The known words of a model trained on ``captions`` and started from a model knowing
    ``also``: sorted; past :data:`MAX_KNOWN`, every word of ``also`` (their rows are trained)
    and then the most frequent of the captions'."""
    kept = dict.fromkeys(also)
    count: Counter[str] = Counter()
    for c in captions:
        count.update(words(c))
    for w, _ in count.most_common():
        if len(kept) >= MAX_KNOWN:
            break
        kept.setdefault(w)
    return tuple(sorted(list(kept)[:MAX_KNOWN]))


class HashTextEncoder(nn.Module):
    """Hashed bag of positioned words -> transformer -> tokens. Trained jointly with the denoiser.

    With ``cfg.known_words``, a word outside them is spelled (:class:`Speller`) instead of taking
    its hash bucket, which training never reached."""

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.dim = cfg.dim
        self.embed = nn.Embedding(cfg.vocab + 1, cfg.dim)  # row 0 = the summary token
        self.pos = nn.Parameter(torch.zeros(cfg.max_tokens + 1, cfg.dim))
        layer = nn.TransformerEncoderLayer(
            cfg.dim, cfg.heads, 2 * cfg.dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)
        self.known = frozenset(cfg.known_words)
        self._speller: tuple[tuple[int, int], Speller] | None = None  # keyed by the weights' state

    def know(self, cfg: TextConfig) -> None:
        """Take ``cfg`` (this encoder's, with other ``known_words``): what a trainer calls once it
        has read the words of its data."""
        if replace(cfg, known_words=()) != replace(self.cfg, known_words=()):
            raise ValueError("know() changes only known_words; build a new encoder for the rest")
        self.cfg, self.known, self._speller = cfg, frozenset(cfg.known_words), None

    def speller(self) -> Speller:
        """The :class:`Speller` of the current embedding (fitted again after it changes)."""
        w = self.embed.weight
        key = (w.data_ptr(), w._version)
        if self._speller is None or self._speller[0] != key:
            rows = w[[self.bucket(k) for k in self.cfg.known_words]]
            self._speller = (key, Speller(self.cfg.known_words, rows))
        return self._speller[1]

    def bucket(self, word: str) -> int:
        """A word's row of ``embed``: 1..vocab (row 0 is the summary token)."""
        return 1 + zlib.crc32(word.encode()) % self.cfg.vocab

    def read(self, captions: list[str | None]) -> list[list[str]]:
        """The words of each caption the encoder reads: its first ``max_tokens``."""
        return [words(c)[: self.cfg.max_tokens] for c in captions]

    def ids(self, captions: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (B, L) and mask (B, L); id 0 is the summary token, words map to 1..vocab."""
        rows = [[0] + [self.bucket(w) for w in ws] for ws in self.read(captions)]
        length = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = True
        return ids, mask

    def embed_words(self, captions: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """Word vectors (B, L, dim) before position and mask (B, L): each word's bucket, or its
        spelling where it is not a known word."""
        ids, mask = self.ids(captions)
        device = self.pos.device
        x = self.embed(ids.to(device))
        if self.known:
            at = [
                (i, j + 1, w)
                for i, ws in enumerate(self.read(captions))
                for j, w in enumerate(ws)
                if w not in self.known
            ]
            if at:
                spell = self.speller()
                vecs = torch.tensor(np.stack([spell(w) for _, _, w in at]), dtype=x.dtype)
                rows = torch.tensor([i for i, _, _ in at], device=device)
                cols = torch.tensor([j for _, j, _ in at], device=device)
                x = x.index_put((rows, cols), vecs.to(device))
        return x, mask.to(device)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Tokens (B, L, dim) from word vectors ``x`` (B, L, dim) and mask (B, L)."""
        x = x + self.pos[: x.shape[1]]
        x = self.layers(x, src_key_padding_mask=~mask)
        return self.norm(x)

    def encode(self, captions: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        x, mask = self.embed_words(captions)
        return self(x, mask), mask


class EmbeddingBackend(Protocol):
    """A pretrained sentence encoder: sentences -> one vector each, (B, D) array-like."""

    def encode(self, sentences: list[str]) -> Any: ...


SENTENCE_TRANSFORMERS = "sentence-transformers:"


def load_backend(spec: str, device: str = "cpu") -> EmbeddingBackend:
    """The backend named by ``TextConfig.encoder``: ``"sentence-transformers:<name or path>"``.

    The model must already be installed locally (nothing is downloaded: ``HF_HUB_OFFLINE=1``).
    """
    if not spec.startswith(SENTENCE_TRANSFORMERS):
        raise ValueError(
            f"unknown text encoder {spec!r}; use 'sentence-transformers:<name or path>'"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]
    except ImportError as e:
        raise ImportError(
            f"text encoder {spec!r} needs the optional package sentence-transformers: "
            "pip install 'chunkworld[text]', and install the model locally"
        ) from e
    return cast(
        EmbeddingBackend,
        SentenceTransformer(spec.removeprefix(SENTENCE_TRANSFORMERS), device=device),
    )


class FrozenTextEncoder(nn.Module):
    """A frozen pretrained sentence encoder behind the same protocol (MAGI-1 freezes T5).

    A caption becomes two tokens: a learned summary token, then the frozen embedding through a
    trained linear map and norm (the only weights saved). The null caption is the summary token
    alone. Embeddings are memoised per caption (the backend is frozen), so a training loop that
    sees the same captions again does not run the big encoder again.
    """

    memo_size = 4096

    def __init__(self, cfg: TextConfig, backend: EmbeddingBackend | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.dim = cfg.dim
        self.proj = nn.Linear(cfg.frozen_dim, cfg.dim)
        self.norm = nn.LayerNorm(cfg.dim)
        self.summary = nn.Parameter(torch.zeros(cfg.dim))
        self.backend = backend  # None: loaded from cfg.encoder at first use
        self._memo: OrderedDict[str, torch.Tensor] = OrderedDict()

    def embed(self, captions: list[str]) -> torch.Tensor:
        """Frozen embeddings (B, frozen_dim) float32, no gradient."""
        todo = [c for c in dict.fromkeys(captions) if c not in self._memo]
        if todo:
            if self.backend is None:
                self.backend = load_backend(self.cfg.encoder)
            out = torch.as_tensor(np.asarray(self.backend.encode(todo)), dtype=torch.float32)
            if out.shape != (len(todo), self.cfg.frozen_dim):
                raise ValueError(
                    f"text backend returned shape {tuple(out.shape)} for {len(todo)} captions; "
                    f"this model was built for width frozen_dim={self.cfg.frozen_dim}"
                )
            for c, e in zip(todo, out, strict=True):
                self._memo[c] = e
        for c in captions:
            self._memo.move_to_end(c)
        rows = torch.stack([self._memo[c] for c in captions])
        while len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)
        return rows

    def encode(self, captions: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.summary.device
        real = [bool(c) for c in captions]
        tokens = self.summary.expand(len(captions), 2, -1).clone()  # (B, 2, dim)
        if any(real):
            emb = self.embed([c for c in captions if c]).to(device)
            idx = torch.tensor([i for i, r in enumerate(real) if r], device=device)
            # under bf16 autocast the projection comes back in bf16; the tokens keep their dtype
            tokens[idx, 1] = self.norm(self.proj(emb)).to(tokens.dtype)
        mask = torch.tensor([[True, r] for r in real], device=device)  # (B, 2)
        return tokens, mask


def build_text_encoder(cfg: TextConfig) -> HashTextEncoder | FrozenTextEncoder:
    """The text encoder a config names (``cfg.encoder``)."""
    return HashTextEncoder(cfg) if cfg.encoder == "hash" else FrozenTextEncoder(cfg)
