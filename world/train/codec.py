"""Phase 1 of training: the codec (autoencoder), then encoding the dataset to latents.

MSE + L1 with 5x weight on pixels away from the frame's dominant colour (the sprites), and a
little noise on the latents so the decoder tolerates the sampler's small errors.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import nn
from tqdm import tqdm

from world.core.codec import Codec
from world.core.cpus import bf16_enabled
from world.core.model import WorldModel
from world.eval.metrics import psnr
from world.train.trainkit import (
    Arrays,
    MetricsLog,
    TrainConfig,
    codec_leg_lr,
    distributed,
    due,
    load_opt,
    open_meta,
    opt_tensors,
    save_state,
)


def codec_loss(
    codec: Codec, frames: np.ndarray, precision: str = "auto", latent_noise: float = 0.02
) -> torch.Tensor:
    """The codec's training loss on uint8 frames (B, k, H, W, 3), k its temporal factor.

    Sprites are a few percent of the pixels but all of the game: pixels away from the frame's
    dominant (median) colour weigh 5x, so the codec does not settle for blur. The decoder sees
    the latents with Gaussian noise of ``latent_noise`` times their standard deviation.
    """
    k = codec.cfg.temporal
    x = codec.to_unit(torch.from_numpy(frames))  # (B, k, 3, H, W)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_enabled(precision)):
        b = x.shape[0]
        z = codec.encoder(x.reshape(b, k * 3, *x.shape[-2:]))
        z_noisy = z + latent_noise * z.detach().float().std() * torch.randn_like(z)
        rec = codec.decoder(z_noisy).float().reshape(x.shape)
    med = x.flatten(-2).median(dim=-1).values[..., None, None]  # (B, k, 3, 1, 1)
    weight = 1.0 + 4.0 * ((x - med).abs().sum(2, keepdim=True) > 0.15).float()
    err = rec - x
    return (weight * (err.pow(2) + 0.5 * err.abs())).mean() + 1e-4 * z.float().pow(2).mean()


class CodecObjective(nn.Module):
    """The codec with its training loss (``codec_loss``), the unit DDP wraps: DDP synchronises
    the gradients of a module's parameters only when its own ``forward`` runs."""

    def __init__(self, codec: Codec, precision: str) -> None:
        super().__init__()
        self.codec, self.precision = codec, precision

    def forward(self, frames: np.ndarray) -> torch.Tensor:
        return codec_loss(self.codec, frames, self.precision)


def latent_frames(frames: np.ndarray, k: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A batch for the codec: ``size`` runs of ``k`` frames, each a latent frame's worth, at random
    clips and latent-frame boundaries of ``frames`` (N, T, H, W, 3) -> (size, k, H, W, 3)."""
    n, t = frames.shape[:2]
    ci = rng.integers(0, n, size)
    fi = rng.integers(0, t // k, size) * k
    return np.stack([frames[c, f : f + k] for c, f in zip(ci, fi, strict=True)])


def codec_step(out: Path) -> int:
    """Steps the codec of run directory ``out`` has trained (0 if it has no codec state)."""
    ck = out / "codec_state.safetensors"
    return int(json.loads(open_meta(ck))["step"]) if ck.exists() else 0


def train_codec(
    model: WorldModel, data: Arrays, tc: TrainConfig, out: Path, rank: int, log: MetricsLog
) -> None:
    codec = model.codec
    k = model.cfg.codec.temporal
    opt = torch.optim.AdamW(codec.parameters(), lr=tc.codec_lr, weight_decay=0.0)
    ck = out / "codec_state.safetensors"
    start = 0
    if ck.exists():
        t = load_file(str(ck))
        codec.load_state_dict({n[6:]: v for n, v in t.items() if n.startswith("codec.")})
        load_opt(opt, t)
        start = codec_step(out)
    unit = distributed(CodecObjective(codec, tc.precision))
    rng = np.random.default_rng(tc.seed * 1000 + rank + start)
    bar = tqdm(
        range(start, tc.codec_steps),
        desc="codec",
        disable=rank != 0,
        initial=start,
        total=tc.codec_steps,
    )
    t0 = time.perf_counter()
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = codec_leg_lr(tc, step)
        loss = unit(latent_frames(data.frames, k, tc.codec_batch, rng))
        opt.zero_grad(set_to_none=True)
        loss.backward()  # under torchrun DDP averages the gradients here
        nn.utils.clip_grad_norm_(codec.parameters(), tc.clip_grad)
        opt.step()
        if step % 10 == 0:
            rate = (step + 1 - start) * tc.codec_batch / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{loss.item():.4f}", frames_s=f"{rate * k:.0f}")
            log(phase="codec", step=step, loss=loss.item())
        if rank == 0 and (due(step + 1, tc.save_every) or step + 1 == tc.codec_steps):
            save_state(
                ck,
                {**{"codec." + k2: v for k2, v in codec.state_dict().items()}, **opt_tensors(opt)},
                {"step": step + 1},
            )
        if dist.is_initialized():
            dist.barrier()
    if rank == 0 and not ck.exists():  # no steps (--codec-steps 0, the codec taken whole from
        # --init-from): the run keeps the codec it has, so that a resume finds it here
        save_state(ck, {"codec." + k2: v for k2, v in codec.state_dict().items()}, {"step": start})


@torch.no_grad()
def reconstruction_psnr(codec: Codec, frames: np.ndarray) -> float:
    """Median over clips of the PSNR (dB) of the codec's reconstruction; frames uint8
    (N, T, H, W, 3) with T a multiple of the codec's temporal factor."""
    scores = []
    for clip in frames:
        rec = codec.decode(codec.encode(torch.from_numpy(clip[None])))
        scores.append(psnr(rec.numpy(), clip[None]))
    return float(np.median(scores))


def codec_quality(model: WorldModel, data: Arrays, clips: int = 8) -> float:
    """Median PSNR (dB) of codec reconstructions of the first chunks of a few clips."""
    return reconstruction_psnr(model.codec, data.frames[:clips, : model.cfg.chunk_frames])


@torch.no_grad()
def encode_dataset(
    model: WorldModel, data: Arrays, batch: int = 8, progress: bool = True
) -> np.ndarray:
    """All frames -> latents (N, T/k, C, h, w) float32 (scaled)."""
    out = []
    for i in tqdm(range(0, len(data.frames), batch), desc="encode", disable=not progress):
        out.append(model.codec.encode(torch.from_numpy(data.frames[i : i + batch])).numpy())
    return np.concatenate(out)
