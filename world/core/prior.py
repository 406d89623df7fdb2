"""The dynamics prior: a small convolutional network's guess of the next chunk, for the sampler
to start from.

The denoiser starts each chunk at play from pure noise and, in one step, must place the player
where the actions put it, to the pixel. It places it one pixel or more off in about 7% of frames
one tick ahead, and a world carries each offset on: that one-tick error, made again every tick,
is what action following loses over a rollout (docs/training-log.md, "One tick ahead"). A small
convolutional network trained, apart from any denoiser, to predict a latent frame from the two
before it and its actions places the player ten times better ("A convolution moves the player").

So a model may carry such a network. With ``sampler.prior_level`` = ``L`` > 0, each chunk of an
unprompted tick starts not from pure noise at level 1 but from the prior's chunk noised to level
``L`` (``x_L = (1 - L) prior + L noise``), and the denoiser takes it from there to clean, on the
sampling grid scaled by ``L``. The prior decides where things go; the denoiser, from a level low
enough to keep that, redraws the detail a squared-error guess blurs. Prompted ticks and starts
with no history begin at pure noise as before: an event asked for is not in the prior's guess.

The prior reads the last two latent frames of the newest clean chunk as the cache holds them
(noised to ``context_level``: no state beyond what a snapshot already keeps), and unrolls one
latent frame at a time: frame ``t`` from frames ``t - 2`` and ``t - 1`` and the actions of the
frames ``t`` stands for, each prediction feeding the next. It outputs the change from frame
``t - 1`` (its output layer starts at zero: "nothing moves"). ``chunkworld train-prior``
(``world/train/prior.py``) trains it for a model's latents.
"""

from __future__ import annotations

import torch
import torch.nn.functional as fn
from torch import nn

from world.core.config import ModelConfig

__all__ = ["ConvTrunk", "DynamicsPrior", "action_planes"]


class ConvTrunk(nn.Module):
    """Input planes -> ``channels`` output planes: a 3x3 convolution to ``width``, residual blocks
    of two 3x3 convolutions, a 3x3 convolution out whose weights start at zero."""

    def __init__(self, inputs: int, width: int, blocks: int, channels: int) -> None:
        super().__init__()
        self.inp = nn.Conv2d(inputs, width, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.GroupNorm(8, width),
                nn.GELU(),
                nn.Conv2d(width, width, 3, padding=1),
                nn.GELU(),
                nn.Conv2d(width, width, 3, padding=1),
            )
            for _ in range(blocks)
        )
        self.out = nn.Conv2d(width, channels, 3, padding=1, bias=False)
        nn.init.zeros_(self.out.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


def action_planes(actions: torch.Tensor, n_actions: int, like: torch.Tensor) -> torch.Tensor:
    """(B, k) action ids -> (B, k * n_actions, h, w) one-hot planes the size of ``like``'s grid."""
    planes = fn.one_hot(actions, n_actions).flatten(1).to(like.dtype)
    return planes[:, :, None, None].expand(-1, -1, *like.shape[-2:])


class DynamicsPrior(nn.Module):
    """Two latent frames and the actions of the next -> that frame; unrolled over a chunk."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        p, c = cfg.prior, cfg.codec
        self.per_frame = c.temporal  # actions per latent frame
        self.n_actions = len(cfg.actions)
        inputs = 2 * c.latent_channels + self.n_actions * c.temporal
        self.trunk = ConvTrunk(inputs, p.width, p.blocks, c.latent_channels)  # out starts at 0

    def step(self, z2: torch.Tensor, z1: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """z2, z1: (B, C, h, w) latent frames t-2, t-1; actions: (B, temporal) ids of the frames
        of t -> (B, C, h, w) latent frame t, as a change from t-1 ("nothing moves" untrained)."""
        planes = action_planes(actions, self.n_actions, z1)
        return z1 + self.trunk(torch.cat([z2, z1, planes], 1))

    def forward(self, last: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """last: (B, 2, C, h, w) the two latent frames before the chunk; actions: (B, F) the
        chunk's per-frame actions -> (B, F / temporal, C, h, w) the chunk's latent frames."""
        z2, z1 = last[:, 0], last[:, 1]
        out = []
        for a in actions.split(self.per_frame, dim=1):
            z2, z1 = z1, self.step(z2, z1, a)
            out.append(z1)
        return torch.stack(out, 1)
