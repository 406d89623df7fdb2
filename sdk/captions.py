"""Encoded captions, kept in a bounded LRU so that a session's memory stays flat however many
captions it sees. Shared by the sessions of a ``SessionBatch`` (one model, one encoder)."""

from __future__ import annotations

from collections import OrderedDict

import torch

from world.core.model import WorldModel


class CaptionCache:
    """Caption -> (tokens (1, L, Dt), mask (1, L)), the ``size`` most recently used kept."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def get(self, model: WorldModel, caption: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoding of ``caption`` ("" = the null caption), encoded on a miss."""
        hit = self._kept.get(caption)
        if hit is not None:
            self._kept.move_to_end(caption)
            return hit
        with torch.no_grad():
            enc = model.encode_text([caption or None])
        self._kept[caption] = enc
        if len(self._kept) > self.size:
            self._kept.popitem(last=False)
        return enc

    def clear(self) -> None:
        self._kept.clear()

    def __len__(self) -> int:
        return len(self._kept)
