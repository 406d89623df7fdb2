"""Training, phase 3: the denoiser and text encoder on the codec's frozen latents.

``train_denoiser`` is what ``chunkworld train`` runs once the codec is trained and the data
encoded (``world/train/stages.py`` has the command and the phases). Flow matching on windows of
``history_chunks + 2`` chunks at the levels of ``world.core.schedule.training_levels`` (a clean
context prefix, then non-decreasing noise), the loss on noisy chunks only, caption dropout,
AdamW, warm-up and cosine decay per leg, gradient clipping, EMA weights (the ones saved), and
self-rollout (``world/train/rollout.py``) when asked. Resumable from ``<out>/denoiser_state.safetensors``.

Every ``eval_every`` steps ``noise_diagnostic`` prints the figure that matters (the "prediction
from noise" docs/training-log.md quotes for every leg): the PSNR of the clean chunk predicted from
pure noise given clean history, against copying the last frame.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import nn
from tqdm import tqdm

from world.core.checkpoint import save_checkpoint
from world.core.config import ModelConfig
from world.core.cpus import bf16_enabled
from world.core.model import WorldModel
from world.core.schedule import (
    add_noise,
    flow_loss,
    predict_clean,
    salience_weight,
    training_levels,
    velocity_target,
)
from world.eval.metrics import psnr
from world.train.datagen import Replayer
from world.train.palette import CLIPS as PALETTE_CLIPS
from world.train.palette import EVERY as PALETTE_EVERY
from world.train.palette import find_palette
from world.train.rollout import RolloutStreams, player_on_track, player_resim, rollout_windows
from world.train.trainkit import (
    Arrays,
    MetricsLog,
    TrainConfig,
    distributed,
    due,
    leg_lr,
    load_opt,
    open_meta,
    opt_tensors,
    save_state,
)


class DenoiseObjective(nn.Module):
    """Text encoder + denoiser with the flow-matching loss, the unit DDP wraps
    (``world.train.trainkit.distributed``)."""

    def __init__(self, model: WorldModel, tc: TrainConfig) -> None:
        super().__init__()
        self.text = model.text
        self.denoiser = model.denoiser
        self.cfg = model.cfg
        self.tc = tc

    def levels(self, b: int, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Levels (B, N) and context mask (B, N) of a batch of training windows."""
        return training_levels(
            b,
            n,
            gen,
            shift=self.tc.train_shift,
            context_max=self.tc.context_max,
            max_context=self.cfg.history_chunks,
            p_pure=self.tc.pure_noise,
        )

    def forward(
        self,
        z: torch.Tensor,
        actions: torch.Tensor,
        captions: list[str | None],
        levels: torch.Tensor,
        is_ctx: torch.Tensor,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        """z (B, N, Tl, C, h, w) clean latents, actions (B, N, F), captions B*N (None = null),
        levels and is_ctx (B, N) from ``levels``, noise like z (the caller draws it, so that a
        batch split over processes can hold the same noise as the whole)."""
        b, n = z.shape[:2]
        x_t = add_noise(z, noise, levels[..., None, None, None, None])
        ctx = torch.zeros_like(x_t[:, :, -1])
        ctx[:, 1:] = x_t[:, :-1, -1]
        valid = torch.zeros(b, n, dtype=torch.bool)
        valid[:, 1:] = True
        caps = [None if is_ctx.view(-1)[i] else c for i, c in enumerate(captions)]
        tokens, mask = self.text.encode(caps)
        tokens = tokens.view(b, n, *tokens.shape[1:])
        mask = mask.view(b, n, -1)
        v = self.denoiser(
            x_t,
            levels,
            actions,
            (tokens, mask),
            torch.arange(n),
            is_context=is_ctx,
            context=(ctx, valid),
        )
        return flow_loss(
            v, velocity_target(z, noise), (~is_ctx).float(), salience_weight(z, self.tc.salience)
        )


def _batch(
    latents: np.ndarray,
    data: Arrays,
    cfg: ModelConfig,
    rng: np.random.Generator,
    size: int,
    window: int,
    dropout: float,
):
    tl, f = cfg.latent_frames, cfg.chunk_frames
    chunks = latents.shape[1] // tl
    ci = rng.integers(0, len(latents), size)
    si = rng.integers(0, chunks - window + 1, size)
    z = np.stack([latents[c, s * tl : (s + window) * tl] for c, s in zip(ci, si, strict=True)])
    z = z.reshape(size, window, tl, *z.shape[2:])
    a = np.stack([data.actions[c, s * f : (s + window) * f] for c, s in zip(ci, si, strict=True)])
    caps: list[str | None] = []
    for c, s in zip(ci, si, strict=True):
        for j in range(window):
            caps.append(None if rng.random() < dropout else data.captions[c][s + j])
    return torch.from_numpy(z), torch.from_numpy(a).view(size, window, f), caps


@torch.no_grad()
def noise_diagnostic(
    model: WorldModel, latents: np.ndarray, data: Arrays, clips: int = 16
) -> dict[str, float]:
    """PSNR of the clean chunk predicted in one step from pure noise given K clean chunks, vs copy-last."""
    cfg = model.cfg
    k, f = cfg.history_chunks, cfg.chunk_frames
    rng = np.random.default_rng(1234)
    z, a, caps = _batch(latents[-clips:], _tail(data, clips), cfg, rng, clips, k + 1, 0.0)
    b, n = z.shape[:2]
    gen = torch.Generator().manual_seed(0)
    levels = torch.full((b, n), cfg.sampler.context_level)
    levels[:, -1] = 1.0
    is_ctx = torch.ones(b, n, dtype=torch.bool)
    is_ctx[:, -1] = False
    x_t = add_noise(z, torch.randn(z.shape, generator=gen), levels[..., None, None, None, None])
    ctx = torch.zeros_like(x_t[:, :, -1])
    ctx[:, 1:] = x_t[:, :-1, -1]
    valid = torch.ones(b, n, dtype=torch.bool)
    caps_ = [None if j < n - 1 else c for j, c in zip(list(range(n)) * b, caps, strict=True)]
    tokens, mask = model.text.encode(caps_)
    v = model.denoiser(
        x_t,
        levels,
        a,
        (tokens.view(b, n, *tokens.shape[1:]), mask.view(b, n, -1)),
        torch.arange(n),
        is_context=is_ctx,
        context=(ctx, valid),
    )
    pred = predict_clean(x_t[:, -1], v[:, -1], torch.tensor(1.0))
    frames_pred = model.codec.decode(pred).numpy()
    truth = model.codec.decode(z[:, -1]).numpy()
    last = model.codec.decode(z[:, -2]).numpy()[:, -1:]
    copy = np.repeat(last, f, axis=1)
    return {"pred_from_noise_db": psnr(frames_pred, truth), "copy_last_db": psnr(copy, truth)}


def param_groups(obj: nn.Module, tc: TrainConfig) -> list[dict[str, Any]]:
    """AdamW's two groups: weight decay on matrices only."""
    named = [p for p in obj.parameters() if p.requires_grad]
    return [
        {"params": [p for p in named if p.dim() >= 2], "weight_decay": tc.weight_decay},
        {"params": [p for p in named if p.dim() < 2], "weight_decay": 0.0},
    ]


def check_groups(opt: torch.optim.Optimizer, meta: dict[str, Any], path: Path) -> None:
    """A saved optimizer state maps onto the optimizer only if its groups are the same sizes. Runs
    started with ``--local-conv-lr`` other than 1 (an option removed in 0.2.0) saved four groups:
    they are refused, since their moment estimates would land on the wrong parameters."""
    now = [len(g["params"]) for g in opt.param_groups]
    then = meta.get("groups", now)
    if then != now:
        raise ValueError(
            f"{path.parent} was started with --local-conv-lr {meta.get('local_conv_lr', '?')}, "
            "an option removed in chunkworld 0.2.0 (docs/experiments.md): resume it with the "
            "code of commit 2868726, or give a new --out"
        )


def held_out_clips(clips: int) -> int:
    """The last clips a run keeps out of training, for its diagnostics: a tenth, 1 to 16.

    ``held_out_clips(12) = 1``, ``held_out_clips(50) = 5``, ``held_out_clips(750) = 16``.
    """
    return max(1, min(16, clips // 10))


def _tail(data: Arrays, clips: int) -> Arrays:
    return Arrays(data.frames[-clips:], data.actions[-clips:], data.captions[-clips:])


def optimizer_step(
    unit: nn.Module,
    opt: torch.optim.Optimizer,
    params: list[nn.Parameter],
    tc: TrainConfig,
    *inputs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the loss ``unit(*inputs)`` (``distributed``: under torchrun DDP averages the
    gradients during ``backward``): forward at ``tc.precision``, backward, clipping to
    ``tc.clip_grad``, ``opt.step()``. Returns the loss and the gradient norm before clipping."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_enabled(tc.precision)):
        loss = unit(*inputs)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    gn = nn.utils.clip_grad_norm_(params, tc.clip_grad)
    opt.step()
    return loss, gn


def train_denoiser(
    model: WorldModel,
    latents: np.ndarray,
    data: Arrays,
    tc: TrainConfig,
    out: Path,
    rank: int,
    world: int,
    log: MetricsLog,
) -> WorldModel:
    cfg = model.cfg
    obj = DenoiseObjective(model, tc)
    params = [p for p in obj.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(param_groups(obj, tc), lr=tc.lr, betas=(0.9, 0.98))
    ema = {k: v.detach().clone() for k, v in obj.state_dict().items()}
    ck = out / "denoiser_state.safetensors"
    start = 0
    if ck.exists():
        t = load_file(str(ck))
        obj.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("obj.")})
        ema = {k[4:]: v for k, v in t.items() if k.startswith("ema.")}
        meta = json.loads(open_meta(ck))
        check_groups(opt, meta, ck)
        load_opt(opt, t)
        start = int(meta["step"])
    unit = distributed(obj)  # after the resume: DDP starts every process from rank 0's weights
    window = cfg.history_chunks + 2
    deep = tc.rollout > 0 and tc.rollout_depth > 0
    loaded = window + (
        cfg.history_chunks if tc.rollout > 0 and not deep else 0
    )  # world/train/rollout.py
    rng = np.random.default_rng(tc.seed * 7919 + rank * 104729 + start)
    train_n = len(latents) - held_out_clips(len(latents))
    # with pixel history, self-rollouts snap their frames to the data's palette as play does
    # (the frames world.train.palette.write_palette counts)
    palette = (
        find_palette(list(data.frames[: min(train_n, PALETTE_CLIPS), ::PALETTE_EVERY]))
        if cfg.sampler.pixel_history
        else None
    )
    streams = None
    if deep:
        streams = RolloutStreams(
            latents[:train_n],
            data.actions[:train_n],
            data.captions[:train_n],
            history=cfg.history_chunks,
            window=window,
            latent_frames=cfg.latent_frames,
            count=max(1, round(tc.rollout * tc.batch)),
            depth=tc.rollout_depth,
            rng=rng,
            on_track=(
                player_on_track(model, data.frames[:train_n], tc.rollout_drift)
                if tc.rollout_drift > 0
                else None
            ),
            retarget=player_resim(model, Replayer(tc.data)) if tc.rollout_resim else None,
            palette=palette,
        )
    gen = torch.Generator().manual_seed(tc.seed * 31 + rank * 17 + start)
    bar = tqdm(
        range(start, tc.steps), desc="denoiser", disable=rank != 0, initial=start, total=tc.steps
    )
    t0, seen = time.perf_counter(), 0
    for step in bar:
        lr = leg_lr(tc, step)
        for g in opt.param_groups:
            g["lr"] = lr
        z, a, caps = _batch(latents[:train_n], data, cfg, rng, tc.batch, loaded, tc.caption_dropout)
        levels, is_ctx = obj.levels(tc.batch, window, gen)
        rolled = 0
        if streams is not None:
            z, a, caps, rolled = streams.fill(
                model, z, a, caps, is_ctx, tc.rollout_steps or None, tc.caption_dropout
            )
        elif tc.rollout > 0:
            z, a, caps, rolled = rollout_windows(
                model, z, a, caps, is_ctx, tc.rollout, rng, tc.rollout_steps or None, palette
            )
        noise = torch.randn(z.shape, generator=gen)
        loss, gn = optimizer_step(unit, opt, params, tc, z, a, caps, levels, is_ctx, noise)
        with torch.no_grad():
            for k, v in obj.state_dict().items():
                if v.dtype.is_floating_point:
                    ema[k].lerp_(v, 1 - tc.ema)
                else:
                    ema[k].copy_(v)
        seen += tc.batch * world
        if step % 10 == 0:
            rate = seen / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{loss.item():.4f}", clips_s=f"{rate:.1f}", lr=f"{lr:.1e}")
            log(
                phase="denoiser",
                step=step,
                loss=loss.item(),
                grad_norm=float(gn),
                lr=lr,
                clips_per_s=rate,
                rolled_out=rolled,
                **(
                    {
                        "rollout_depth": float(streams.depths().mean()),
                        "anchored": streams.anchored,
                        "retargeted": streams.retargeted,
                    }
                    if streams
                    else {}
                ),
            )
        if rank == 0 and due(step + 1, tc.eval_every):
            diag = _with_weights(obj, ema, lambda: noise_diagnostic(model, latents, data))
            log(phase="eval", step=step + 1, **diag)
            tqdm.write(
                f"step {step + 1}: from-noise {diag['pred_from_noise_db']:.2f} dB vs "
                f"copy-last {diag['copy_last_db']:.2f} dB"
            )
        if rank == 0 and (due(step + 1, tc.save_every) or step + 1 == tc.steps):
            save_state(
                ck,
                {
                    **{"obj." + k: v for k, v in obj.state_dict().items()},
                    **{"ema." + k: v for k, v in ema.items()},
                    **opt_tensors(opt),
                },
                {"step": step + 1, "groups": [len(g["params"]) for g in opt.param_groups]},
            )
            extra = {"train": asdict(tc), "step": step + 1}
            _with_weights(obj, ema, lambda e=extra: save_checkpoint(model, out / "model", e))
        if dist.is_initialized():
            dist.barrier()
    obj.load_state_dict(ema)
    return model


def _with_weights(obj: nn.Module, weights: dict[str, torch.Tensor], fn):
    saved = {k: v.clone() for k, v in obj.state_dict().items()}
    obj.load_state_dict(weights)
    try:
        return fn()
    finally:
        obj.load_state_dict(saved)
