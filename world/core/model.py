"""``WorldModel``: the codec, the text encoder and the denoiser of one config, as one module."""

from __future__ import annotations

import torch
from torch import nn

from world.core.codec import Codec
from world.core.config import ModelConfig
from world.core.denoiser import Denoiser
from world.core.prior import DynamicsPrior
from world.core.text import build_text_encoder


class WorldModel(nn.Module):
    """All learned parts of a world. Parameter names are the checkpoint's keys."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.codec = Codec(cfg.codec)
        self.text = build_text_encoder(cfg.text)
        self.denoiser = Denoiser(cfg, cfg.text.dim)
        # the dynamics prior (world/core/prior.py), when the config has one
        self.prior = DynamicsPrior(cfg) if cfg.prior.width else None

    def encode_text(self, captions: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions -> tokens (B, L, Dt), mask (B, L)."""
        return self.text.encode(captions)

    def parameter_count(self) -> dict[str, int]:
        parts: list[tuple[str, nn.Module]] = [
            ("codec", self.codec),
            ("text", self.text),
            ("denoiser", self.denoiser),
        ]
        if self.prior is not None:
            parts.append(("prior", self.prior))
        return {name: sum(p.numel() for p in part.parameters()) for name, part in parts}
