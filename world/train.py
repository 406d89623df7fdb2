"""Training: the codec first, then the denoiser and text encoder on frozen latents.

One command, resumable from its last checkpoint (a session may end at any moment)::

    chunkworld train --data data/train --out runs/default            # or python -m world.train
    torchrun --nproc-per-node 2 -m world.train --data ... --out ...    # DDP (gloo on CPU)

Phases, recorded in ``<out>/progress.json`` so a restart continues where it stopped:

1. ``codec``: autoencoder on single latent frames (``temporal`` frames each), MSE + L1, small
   noise on the latents so the decoder tolerates the sampler's errors. Then ``latent_scale`` is
   set so latents have unit standard deviation. A trained run asked for more ``codec_steps``
   continues its codec (a leg of its own from ``codec_schedule_from``), then phase 2 runs again
   and the denoiser continues on the new latents, at the same ``latent_scale``.
2. ``encode``: the whole dataset is encoded once to latents (``<out>/latents.npy``).
3. ``denoiser``: flow matching on windows of ``history_chunks + 2`` chunks with the levels of
   ``world.schedule.training_levels`` (clean context prefix, then non-decreasing noise), loss on
   noisy chunks only, caption dropout, AdamW, warm-up and cosine decay, gradient clipping, EMA.
   The EMA weights are what gets exported.

Every ``eval_every`` steps it prints the diagnostic that matters (DESIGN section 6): PSNR of the
clean chunk predicted from pure noise given clean history, against copying the last frame.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import nn
from tqdm import tqdm

from world.checkpoint import load_matching, read_config, save_checkpoint
from world.codec import codec_setting, codec_text
from world.config import ModelConfig, preset
from world.cpus import warn_if_busy
from world.datagen import Replayer
from world.denoiser import Block
from world.metrics import psnr
from world.model import WorldModel
from world.rollout import RolloutStreams, player_on_track, player_resim, rollout_windows
from world.schedule import (
    add_noise,
    flow_loss,
    predict_clean,
    salience_weight,
    training_levels,
    velocity_target,
)
from world.text import FrozenTextEncoder, load_backend
from world.train_codec import codec_quality, codec_step, encode_dataset, train_codec
from world.trainkit import (
    Arrays,
    MetricsLog,
    TrainConfig,
    bf16_enabled,
    init_dist,
    leg_lr,
    load_arrays,
    load_opt,
    open_meta,
    opt_tensors,
    parse_config,
    save_state,
    sync_grads,
)

# --- phase 3: denoiser ---------------------------------------------------------------------------------


class DenoiseObjective(nn.Module):
    """Text encoder + denoiser with the flow-matching loss, the unit DDP wraps."""

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
        gen: torch.Generator,
    ) -> torch.Tensor:
        """z (B, N, Tl, C, h, w) clean latents, actions (B, N, F), captions B*N (None = null),
        levels and is_ctx (B, N) from ``levels``."""
        b, n = z.shape[:2]
        noise = torch.randn(z.shape, generator=gen)
        x_t = add_noise(z, noise, levels[..., None, None, None, None])
        ctx = torch.zeros_like(x_t[:, :, -1])
        ctx[:, 1:] = x_t[:, :-1, -1]
        valid = torch.zeros(b, n, dtype=torch.bool)
        valid[:, 1:] = True
        caps = [None if is_ctx.view(-1)[i] else c for i, c in enumerate(captions)]
        tokens, mask = self.text.encode(caps)
        tokens = tokens.view(b, n, *tokens.shape[1:])
        mask = mask.view(b, n, -1)
        v = self.denoiser(x_t, levels, actions, tokens, mask, torch.arange(n), is_ctx, ctx, valid)
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
        tokens.view(b, n, *tokens.shape[1:]),
        mask.view(b, n, -1),
        torch.arange(n),
        is_ctx,
        ctx,
        valid,
    )
    pred = predict_clean(x_t[:, -1], v[:, -1], torch.tensor(1.0))
    frames_pred = model.codec.decode(pred).numpy()
    truth = model.codec.decode(z[:, -1]).numpy()
    last = model.codec.decode(z[:, -2]).numpy()[:, -1:]
    copy = np.repeat(last, f, axis=1)
    return {"pred_from_noise_db": psnr(frames_pred, truth), "copy_last_db": psnr(copy, truth)}


def _tail(data: Arrays, clips: int) -> Arrays:
    return Arrays(data.frames[-clips:], data.actions[-clips:], data.captions[-clips:])


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
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": tc.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=tc.lr,
        betas=(0.9, 0.98),
    )
    ema = {k: v.detach().clone() for k, v in obj.state_dict().items()}
    ck = out / "denoiser_state.safetensors"
    start = 0
    if ck.exists():
        t = load_file(str(ck))
        obj.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("obj.")})
        ema = {k[4:]: v for k, v in t.items() if k.startswith("ema.")}
        load_opt(opt, t)
        start = int(json.loads(open_meta(ck))["step"])
    window = cfg.history_chunks + 2
    deep = tc.rollout > 0 and tc.rollout_depth > 0
    loaded = window + (cfg.history_chunks if tc.rollout > 0 and not deep else 0)  # world/rollout.py
    rng = np.random.default_rng(tc.seed * 7919 + rank * 104729 + start)
    held_out = max(1, min(16, len(latents) // 10))
    train_n = len(latents) - held_out
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
                model, z, a, caps, is_ctx, tc.rollout, rng, tc.rollout_steps or None
            )
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_enabled(tc.precision)):
            loss = obj(z, a, caps, levels, is_ctx, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sync_grads(params)
        gn = nn.utils.clip_grad_norm_(params, tc.clip_grad)
        opt.step()
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
        if rank == 0 and (step + 1) % tc.eval_every == 0:
            diag = _with_weights(obj, ema, lambda: noise_diagnostic(model, latents, data))
            log(phase="eval", step=step + 1, **diag)
            tqdm.write(
                f"step {step + 1}: from-noise {diag['pred_from_noise_db']:.2f} dB vs "
                f"copy-last {diag['copy_last_db']:.2f} dB"
            )
        if rank == 0 and ((step + 1) % tc.save_every == 0 or step + 1 == tc.steps):
            save_state(
                ck,
                {
                    **{"obj." + k: v for k, v in obj.state_dict().items()},
                    **{"ema." + k: v for k, v in ema.items()},
                    **opt_tensors(opt),
                },
                {"step": step + 1},
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


# --- the command ---------------------------------------------------------------------------------------


def _run_shape(tc: TrainConfig, progress: dict, out: Path) -> tuple[ModelConfig, str]:
    """The run's model config from the preset, ``--init-from``'s codec setting, ``--codec`` and
    ``--depth``, and its codec as text; raises ValueError when a resumed run (``progress``)
    started with another codec or depth."""
    cfg = preset(tc.preset)
    base = cfg.codec
    if tc.init_from:  # fine-tuning keeps the source's codec setting, at the preset's frame size
        source = read_config(tc.init_from)[0].codec
        base = replace(source, frame_size=base.frame_size, latent_scale=base.latent_scale)
    cfg = cfg.replace(codec=codec_setting(tc.codec, base))
    if tc.depth:
        cfg = cfg.replace(denoiser=replace(cfg.denoiser, depth=tc.depth))
    if progress.get("depth", cfg.denoiser.depth) != cfg.denoiser.depth:
        raise ValueError(
            f"{out} was started with {progress['depth']} denoiser blocks; this call asks for "
            f"{cfg.denoiser.depth}: resume it with --depth {progress['depth']}, or give a new --out"
        )
    codec_now, codec_then = codec_text(cfg.codec), progress.get("codec_setting")
    if codec_then:
        changed = codec_then != codec_now
    else:  # a run started before the setting was recorded: its --codec alone
        changed = bool(progress) and progress.get("codec", "") != tc.codec
    if changed:
        raise ValueError(
            f"{out} was started with --codec {progress.get('codec', '')!r}"
            + (f" (the codec {codec_then})" if codec_then else "")
            + f"; this call asks for {codec_now}: resume it with the --codec and --init-from it "
            "started with, or give a new --out"
        )
    return cfg, codec_now


def run(tc: TrainConfig) -> WorldModel:
    if (tc.rollout_depth > 0 and tc.rollout <= 0) or (
        (tc.rollout_drift > 0 or tc.rollout_resim) and tc.rollout_depth <= 0
    ):
        raise ValueError(
            "--rollout-depth needs --rollout P (the share of windows it serves), and "
            "--rollout-drift and --rollout-resim need --rollout-depth D: e.g. --rollout 0.5 "
            "--rollout-depth 64 --rollout-drift 2"
        )
    if tc.depth < 0:
        raise ValueError(f"--depth {tc.depth}: give the denoiser's blocks, or 0 for the preset's")
    rank, world = init_dist()
    torch.manual_seed(tc.seed)
    out = Path(tc.out)
    out.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(out, rank)
    progress_file = out / "progress.json"
    progress = json.loads(progress_file.read_text()) if progress_file.exists() else {}
    cfg, codec_now = _run_shape(tc, progress, out)
    backend = None
    if tc.text_encoder != "hash":  # the frozen encoder's width sizes the trained projection
        backend = load_backend(tc.text_encoder)
        width = backend.encode(["a probe caption"])
        cfg = cfg.replace(
            text=replace(cfg.text, encoder=tc.text_encoder, frozen_dim=int(np.shape(width)[-1]))
        )
    if "latent_scale" in progress:
        cfg = cfg.replace(
            codec=cfg.codec.__class__(
                **{**asdict(cfg.codec), "latent_scale": progress["latent_scale"]}
            )
        )
    model = WorldModel(cfg)
    if backend is not None:
        assert isinstance(model.text, FrozenTextEncoder)
        model.text.backend = backend
    init_scale = None  # the latent_scale of a codec taken whole from tc.init_from
    if tc.init_from:  # first, so that the run's own saved state loads over it
        taken, kept, init_cfg = load_matching(model, tc.init_from)
        if rank == 0:
            fresh = f"; fresh: {', '.join(kept[:6])}{' ...' * (len(kept) > 6)}" if kept else ""
            tqdm.write(f"init: {len(taken)} of {len(taken) + len(kept)} from {tc.init_from}{fresh}")
        if not any(n.startswith("codec.") for n in kept):
            init_scale = init_cfg.codec.latent_scale
        for i, block in enumerate(model.denoiser.blocks):
            if i >= init_cfg.denoiser.depth and isinstance(block, Block):  # one it lacks
                block.shut_gates()  # passes its input through
    data = load_arrays(tc.data, cfg)
    if rank == 0:
        tqdm.write(
            f"data: {data.frames.shape[0]} clips x {data.frames.shape[1]} frames; "
            f"model {model.parameter_count()}"
        )

    if "latent_scale" not in progress:  # phase 1
        train_codec(model, data, tc, out, rank, log)
        with torch.no_grad():
            sample = torch.from_numpy(data.frames[:16, : cfg.chunk_frames * 4])
            std = float(model.codec.encode(sample).std())
        progress["latent_scale"] = init_scale or 1.0 / std  # the scale its denoiser knows
        progress["codec"] = tc.codec
        progress["codec_setting"] = codec_now
        progress["depth"] = cfg.denoiser.depth
        progress["codec_psnr_db"] = codec_quality(model, data)
        if rank == 0:
            progress_file.write_text(json.dumps(progress))
            tqdm.write(
                f"codec: {progress['codec_psnr_db']:.2f} dB reconstruction, latent std {std:.3f}"
            )
    elif codec_step(out) < tc.codec_steps:  # a longer codec leg for a trained run
        if rank == 0:
            tqdm.write(
                f"codec: continuing from step {codec_step(out)} to {tc.codec_steps}; the data "
                "will be encoded anew and the denoiser goes on with the new latents"
            )
            # first, so that a leg cut short never leaves the old codec's latents behind
            (out / "latents.npy").unlink(missing_ok=True)
        train_codec(model, data, tc, out, rank, log)  # resumes from its saved state
        progress["codec_psnr_db"] = codec_quality(model, data)
        if rank == 0:
            progress_file.write_text(json.dumps(progress))
            tqdm.write(f"codec: {progress['codec_psnr_db']:.2f} dB reconstruction")
        if dist.is_initialized():
            dist.barrier()
    elif (out / "codec_state.safetensors").exists():
        t = load_file(str(out / "codec_state.safetensors"))
        model.codec.load_state_dict({n[6:]: v for n, v in t.items() if n.startswith("codec.")})
    elif init_scale != progress["latent_scale"]:  # runs before 2026-12-01 saved no codec state
        raise ValueError(  # after --codec-steps 0; the codec came whole from --init-from
            f"{out} holds no codec state: resume it with the --init-from it started with, "
            "or train a codec with --codec-steps N"
        )
    cfg = cfg.replace(
        codec=cfg.codec.__class__(**{**asdict(cfg.codec), "latent_scale": progress["latent_scale"]})
    )
    model.cfg = cfg
    model.codec.cfg = cfg.codec
    model.denoiser.cfg = cfg
    for p in model.codec.parameters():
        p.requires_grad_(False)

    lat_file = out / "latents.npy"
    if rank == 0 and not lat_file.exists():  # phase 2
        np.save(lat_file, encode_dataset(model, data))
    if dist.is_initialized():
        dist.barrier()
    latents = np.load(lat_file)

    model = train_denoiser(model, latents, data, tc, out, rank, world, log)  # phase 3
    if dist.is_initialized():  # invariant: averaged gradients keep every process's weights equal
        total = torch.tensor([sum(float(p.double().sum()) for p in model.parameters())])
        sums = [torch.zeros(1) for _ in range(world)]
        dist.all_gather(sums, total)
        log(phase="ddp", world_size=world, checksums=[float(x) for x in sums])
    if rank == 0:
        save_checkpoint(
            model,
            out / "model",
            {"train": asdict(tc), "step": tc.steps, "codec_psnr_db": progress["codec_psnr_db"]},
        )
        if tc.export:
            save_checkpoint(model, tc.export, {"train": asdict(tc), "step": tc.steps})
        plot_metrics(out)
    if dist.is_initialized():  # leave together: a rank that tears down while rank 0 still
        dist.barrier()  # writes the checkpoint can abort in gloo's teardown (seen once in CI)
        dist.destroy_process_group()
    return model


def plot_metrics(out: Path) -> Path | None:
    """Loss curves and the from-noise diagnostic to ``<out>/metrics.png`` (needs matplotlib)."""
    if not (out / "metrics.jsonl").exists():  # a run of no steps: nothing to plot
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.5))
    for i, phase in enumerate(("codec", "denoiser")):
        r = [x for x in rows if x["phase"] == phase]
        ax[i].plot([x["step"] for x in r], [x["loss"] for x in r])
        ax[i].set(title=f"{phase} loss", xlabel="step", yscale="log")
    r = [x for x in rows if x["phase"] == "eval"]
    ax[2].plot([x["step"] for x in r], [x["pred_from_noise_db"] for x in r], label="from noise")
    ax[2].plot([x["step"] for x in r], [x["copy_last_db"] for x in r], label="copy last")
    ax[2].set(title="one-step PSNR (dB)", xlabel="step")
    ax[2].legend()
    fig.tight_layout()
    fig.savefig(out / "metrics.png", dpi=90)
    return out / "metrics.png"


def main(argv: list[str] | None = None) -> None:
    tc = parse_config(TrainConfig, "chunkworld train", __doc__, argv)
    warn_if_busy(torch.get_num_threads())
    run(tc)


if __name__ == "__main__":
    main()
