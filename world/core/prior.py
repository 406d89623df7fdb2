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

A prior may instead work on pixels (``prior.space = "pixels"``, :class:`PixelPrior`): it moves
each pixel of the last frame by up to ``radius`` pixels, or draws it anew, and the sampler
encodes its frames to start the chunk from. A latent guess blurs a small moving object a little
every frame until it is gone (docs/training-log.md, "Where the balls go"); a pixel moved is
moved whole, and what stands still is copied exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as fn
from torch import nn

from world.core.config import ModelConfig

__all__ = ["ConvTrunk", "DynamicsPrior", "PixelPrior", "action_planes", "build_prior"]


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


def _residual(width: int) -> nn.Module:
    return nn.Sequential(
        nn.GroupNorm(8, width),
        nn.GELU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.GELU(),
        nn.Conv2d(width, width, 3, padding=1),
    )


class PixelPrior(nn.Module):
    """Two frames and the actions of the next -> that frame, each of its pixels taken from the
    last frame up to ``radius`` px away or drawn new; unrolled over a chunk.

    A small U-Net (full, half and quarter resolution; the residual blocks at a quarter) reads the
    two frames, their difference and the action planes, and scores, for every output pixel, each
    of the ``(2 radius + 1)^2`` offsets it may come from, plus "new" with a colour of its own,
    and each pixel takes its likeliest source outright: a moved object keeps its shape and
    colour, never a blend. Training scores the blend and each source's error weighted by its
    probability (``world/train/prior.py``). The scores start at "nothing moves".
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        p = cfg.prior
        self.radius = p.radius
        self.offsets = (2 * p.radius + 1) ** 2
        self.n_actions = len(cfg.actions)
        w1, w2 = p.width, 2 * p.width
        self.inp = nn.Conv2d(9 + self.n_actions, w1, 3, padding=1)
        self.down1 = nn.Conv2d(w1, w2, 4, stride=2, padding=1)
        self.down2 = nn.Conv2d(w2, w2, 4, stride=2, padding=1)
        self.mid = nn.ModuleList(_residual(w2) for _ in range(p.blocks))
        self.up2 = nn.ConvTranspose2d(w2, w2, 4, stride=2, padding=1)
        self.at_half = _residual(w2)
        self.up1 = nn.ConvTranspose2d(w2, w1, 4, stride=2, padding=1)
        self.at_full = _residual(w1)
        self.out = nn.Conv2d(w1, self.offsets + 1 + 3, 3, padding=1)  # scores, "new", colour
        nn.init.zeros_(self.out.weight)
        bias = self.out.bias
        assert bias is not None
        with torch.no_grad():
            bias.zero_()
            bias[self.offsets // 2] = 4.0  # offset (0, 0): nothing moves (mostly: room to learn)
            bias[self.offsets] = -3.0  # a new colour, rarely

    def scores(self, f2: torch.Tensor, f1: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """f2, f1: (B, 3, H, W) frames t-2, t-1 in [-1, 1]; actions: (B,) ids of frame t ->
        (B, offsets + 4, H, W): each offset's score, "new"'s score, the new colour (pre-tanh)."""
        planes = action_planes(actions[:, None], self.n_actions, f1)
        x = self.inp(torch.cat([f2, f1, f1 - f2, planes], 1))
        h1 = self.down1(fn.gelu(x))
        h = self.down2(fn.gelu(h1))
        for block in self.mid:
            h = h + block(h)
        u = self.up2(h) + h1
        u = u + self.at_half(u)
        u = self.up1(u) + x
        u = u + self.at_full(u)
        return self.out(fn.gelu(u))

    def candidates(
        self, f2: torch.Tensor, f1: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every pixel's sources for frame t, (B, 3, offsets + 1, H, W): the last frame's pixel
        at each offset (the rim repeats the edge), then the new colour; and the prior's
        probabilities of taking each, (B, offsets + 1, H, W)."""
        b, _, h, w = f1.shape
        r, k = self.radius, self.offsets
        s = self.scores(f2, f1, actions).float()
        padded = fn.pad(f1.float(), (r, r, r, r), mode="replicate")
        sources = fn.unfold(padded, 2 * r + 1).view(b, 3, k, h, w)  # [:, :, j]: offset j's pixel
        sources = torch.cat([sources, torch.tanh(s[:, k + 1 :])[:, :, None]], 2)
        return sources, s[:, : k + 1].softmax(1)

    @staticmethod
    def pick(sources: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W): each pixel from its likeliest source."""
        best = probs.argmax(1)[:, None, None].expand(-1, 3, 1, -1, -1)
        return sources.gather(2, best)[:, :, 0]

    def step(self, f2: torch.Tensor, f1: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Frame t (B, 3, H, W) in [-1, 1] from frames t-2, t-1 and frame t's actions (B,):
        ``pick(*candidates(...))`` without laying out every source (a third of the time)."""
        b, _, h, w = f1.shape
        r, side, k = self.radius, 2 * self.radius + 1, self.offsets
        s = self.scores(f2, f1, actions).float()
        best = s[:, : k + 1].argmax(1)  # (B, H, W); k is "new"
        offset = best.clamp(max=k - 1)
        ys = (torch.arange(h)[:, None] + offset // side - r).clamp(0, h - 1)  # the rim repeats
        xs = (torch.arange(w)[None, :] + offset % side - r).clamp(0, w - 1)
        rows = torch.arange(b)[:, None, None]
        moved = f1.float().permute(0, 2, 3, 1)[rows, ys, xs].permute(0, 3, 1, 2)
        return torch.where((best == k)[:, None], torch.tanh(s[:, k + 1 :]), moved)

    def forward(self, last: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """last: (B, 2, 3, H, W) the two frames before the chunk, in [-1, 1]; actions: (B, F)
        the chunk's per-frame actions -> (B, F, 3, H, W) the chunk's frames."""
        f2, f1 = last[:, 0], last[:, 1]
        out = []
        for a in actions.unbind(1):
            f2, f1 = f1, self.step(f2, f1, a)
            out.append(f1)
        return torch.stack(out, 1)


def build_prior(cfg: ModelConfig) -> DynamicsPrior | PixelPrior | None:
    """The config's dynamics prior: none, a latent one or a pixel one (``prior.space``)."""
    if not cfg.prior.width:
        return None
    return PixelPrior(cfg) if cfg.prior.space == "pixels" else DynamicsPrior(cfg)
