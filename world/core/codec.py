"""The codec: a small convolutional autoencoder, frames <-> latents.

Compression is what makes generation cheap on a CPU. Space shrinks by ``spatial`` (8: 64x64 -> 8x8):
a free pixel-unshuffle by ``patch`` (4), then strided convolutions; time shrinks by ``temporal`` by
stacking that many consecutive frames on the channel axis, so a chunk of ``chunk_frames`` frames is
encoded and decoded on its own (no look-ahead past the chunk), which is what streaming needs.
Encoding is deterministic (MAGI-1 uses the posterior mean); during training small noise is added to
the latents so the decoder tolerates the sampler's errors.

Shapes (small preset)::

    frames  (B, F=4, 64, 64, 3) uint8
    latents (B, Tl=2, C=16, 8, 8) float    Tl = F / temporal
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as fn
from torch import nn

from world.core.config import CodecConfig, preset


class ResBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, width), width)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.norm2 = nn.GroupNorm(min(8, width), width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(fn.silu(self.norm1(x)))
        return x + self.conv2(fn.silu(self.norm2(h)))


def _levels(cfg: CodecConfig) -> int:
    """Stride-2 levels after the pixel (un)shuffle: log2(spatial / patch)."""
    levels = int(round(math.log2(cfg.spatial // cfg.patch)))
    if (
        cfg.spatial % cfg.patch
        or 2**levels * cfg.patch != cfg.spatial
        or len(cfg.widths) != levels + 1
    ):
        raise ValueError(
            f"codec: spatial={cfg.spatial} must be patch={cfg.patch} times a power of two, with "
            f"one width per level (got widths={cfg.widths}, need {levels + 1})"
        )
    if cfg.decoder_blocks < 0:
        raise ValueError(f"codec: decoder_blocks={cfg.decoder_blocks} must be 0 or more")
    return levels


class Encoder(nn.Module):
    """Pixel-unshuffle by ``patch`` (free), then convolutions at low resolution only.

    Working at frame/patch resolution with wide layers is several times cheaper on a CPU than
    full-resolution convolutions, and a flat-coloured sprite's edges survive it exactly.
    """

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        levels = _levels(cfg)
        w = cfg.widths
        self.unshuffle = nn.PixelUnshuffle(cfg.patch)
        self.stem = nn.Conv2d(3 * cfg.temporal * cfg.patch**2, w[0], 3, padding=1)
        blocks: list[nn.Module] = []
        for i in range(levels):
            blocks += [ResBlock(w[i]), nn.Conv2d(w[i], w[i + 1], 4, stride=2, padding=1)]
        self.blocks = nn.Sequential(*blocks)
        self.mid = ResBlock(w[-1])
        self.out = nn.Conv2d(w[-1], cfg.latent_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3k, H, W) -> (N, C, h, w)
        return self.out(fn.silu(self.mid(self.blocks(self.stem(self.unshuffle(x))))))


class Decoder(nn.Module):
    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        levels = _levels(cfg)
        w = cfg.widths
        self.inp = nn.Conv2d(cfg.latent_channels, w[-1], 3, padding=1)
        self.mid = ResBlock(w[-1])
        ups: list[nn.Module] = []
        for i in reversed(range(levels)):
            ups += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(w[i + 1], w[i], 3, padding=1),
                ResBlock(w[i]),
            ]
        self.ups = nn.Sequential(*ups)
        refine = [ResBlock(w[0]) for _ in range(cfg.decoder_blocks)]
        for block in refine:  # the identity to begin with: grown from a trained decoder, the
            for p in block.conv2.parameters():  # codec starts as exactly that decoder
                nn.init.zeros_(p)
        self.refine = nn.Sequential(*refine)
        self.norm = nn.GroupNorm(min(8, w[0]), w[0])
        self.out = nn.Conv2d(w[0], 3 * cfg.temporal * cfg.patch**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(cfg.patch)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (N, C, h, w) -> (N, 3k, H, W)
        h = self.refine(self.ups(self.mid(self.inp(z))))
        return self.shuffle(self.out(fn.silu(self.norm(h))))


class Codec(nn.Module):
    """Frames (uint8 or [-1, 1] floats) <-> scaled latents; one chunk at a time or many."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    @staticmethod
    def to_unit(frames: torch.Tensor) -> torch.Tensor:
        """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
        return frames.permute(*range(frames.dim() - 3), -1, -3, -2).float() / 127.5 - 1.0

    @staticmethod
    def to_uint8(x: torch.Tensor) -> torch.Tensor:
        """float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3)."""
        x = ((x.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
        return x.permute(*range(x.dim() - 3), -2, -1, -3)

    def encode_unit(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, 3, H, W) in [-1, 1] -> scaled latents (B, F/k, C, h, w)."""
        b, f, c, h, w = x.shape
        k = self.cfg.temporal
        if f % k:
            raise ValueError(
                f"frame count {f} must be a multiple of the codec's temporal factor {k}"
            )
        z = self.encoder(x.reshape(b * f // k, k * c, h, w))
        return (z * self.cfg.latent_scale).reshape(b, f // k, *z.shape[1:])

    def decode_unit(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, Tl, C, h, w) -> (B, Tl*k, 3, H, W) in about [-1, 1]."""
        b, tl = z.shape[:2]
        x = self.decoder((z / self.cfg.latent_scale).flatten(0, 1))  # (B*Tl, 3k, H, W)
        k = self.cfg.temporal
        return x.reshape(b, tl * k, 3, *x.shape[-2:])

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (B, F, H, W, 3) -> scaled latents (B, F/k, C, h, w) float32."""
        return self.encode_unit(self.to_unit(frames)).float()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, Tl, C, h, w) -> uint8 (B, Tl*k, H, W, 3)."""
        return self.to_uint8(self.decode_unit(latents))


def codec_setting(text: str, base: CodecConfig | None = None) -> CodecConfig:
    """``"latent_channels=64,patch=2,widths=64/128/128"`` -> that codec config (``base``, by
    default the ``small`` preset's codec, with those fields replaced); ``""`` -> ``base``."""
    base = preset("small").codec if base is None else base
    names = {f.name for f in dataclasses.fields(CodecConfig)} - {"latent_scale"}
    changes: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in names:
            raise ValueError(
                f"codec setting {item!r}: write KEY=VALUE with KEY one of {sorted(names)}"
            )
        try:
            changes[key] = (
                tuple(int(v) for v in value.split("/")) if key == "widths" else int(value)
            )
        except ValueError:
            raise ValueError(
                f"codec setting {item!r}: values are integers (widths: 64/128)"
            ) from None
    cfg = dataclasses.replace(base, **changes)
    Codec(cfg)  # checks the setting now, with the codec's own message
    return cfg


def codec_text(cfg: CodecConfig) -> str:
    """The inverse of ``codec_setting``: every field but ``latent_scale`` as ``KEY=VALUE,...``
    (``"frame_size=64,spatial=8,...,widths=128/128"``)."""
    items = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name != "latent_scale":
            text = "/".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
            items.append(f"{f.name}={text}")
    return ",".join(items)
