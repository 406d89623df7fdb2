"""Text encoders: a caption -> a short sequence of tokens for cross-attention.

The interface is the ``TextEncoder`` protocol: ``encode(captions) -> (tokens, mask)``. The
default, ``HashTextEncoder``, is self-contained (no downloads): words are hashed into buckets,
embedded and passed through a small transformer trained with the world model. A frozen
pretrained sentence encoder (MAGI-1 uses a frozen T5) fits the same protocol; see
``FrozenSentenceEncoder``.

Every encoding starts with one summary token, so the null caption ("" or None) is a sequence of
one token and cross-attention never sees an empty key set.
"""

from __future__ import annotations

import re
import zlib
from typing import Protocol

import torch
from torch import nn

from world.config import TextConfig

_WORD = re.compile(r"[a-z0-9]+")


def words(caption: str | None) -> list[str]:
    """Lower-case alphanumeric words of a caption: ``words("Night, 2 balls!") == ["night", "2", "balls"]``."""
    return _WORD.findall((caption or "").lower())


class TextEncoder(Protocol):
    dim: int

    def encode(self, captions: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns tokens (B, L, dim) float and mask (B, L) bool (True = a real token)."""
        ...


class HashTextEncoder(nn.Module):
    """Hashed bag of positioned words -> transformer -> tokens. Trained jointly with the denoiser."""

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

    def ids(self, captions: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (B, L) and mask (B, L); id 0 is the summary token, words map to 1..vocab."""
        rows = [
            [0]
            + [1 + zlib.crc32(w.encode()) % self.cfg.vocab for w in words(c)][: self.cfg.max_tokens]
            for c in captions
        ]
        length = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = True
        return ids, mask

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        x = self.layers(x, src_key_padding_mask=~mask)
        return self.norm(x)

    def encode(self, captions: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.ids(captions)
        return self(ids.to(self.pos.device), mask.to(self.pos.device)), mask.to(self.pos.device)


class FrozenSentenceEncoder:
    """A frozen pretrained sentence encoder (optional extra) behind the same protocol.

    Uses ``sentence_transformers`` with a model that is installed locally (no download at run
    time), returning one token per caption plus a summary slot, projected by a trained linear map
    in the model when widths differ. Not used by the shipped default.
    """

    def __init__(self, model_name_or_path: str, device: str = "cpu") -> None:
        try:
            from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]
        except ImportError as e:  # pragma: no cover - optional dependency
            raise ImportError(
                "FrozenSentenceEncoder needs the optional package sentence-transformers: "
                "pip install sentence-transformers (and a locally installed model)"
            ) from e
        self.model = SentenceTransformer(model_name_or_path, device=device)
        self.dim = int(self.model.get_sentence_embedding_dimension())

    @torch.no_grad()
    def encode(self, captions: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        emb = torch.as_tensor(self.model.encode([c or "" for c in captions]))  # (B, dim)
        null = torch.tensor([not c for c in captions])
        emb = torch.where(null[:, None], torch.zeros_like(emb), emb)
        return emb[:, None, :], torch.ones(len(captions), 1, dtype=torch.bool)
