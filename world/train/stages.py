"""Training: the codec first, then the denoiser and text encoder on frozen latents.

One command, resumable from its last checkpoint (a session may end at any moment)::

    python -m world.train --data data/train --out runs/default     # chunkworld train runs the whole recipe
    torchrun --nproc-per-node 2 -m world.train --data ... --out ...    # DDP (gloo on CPU)

Phases, recorded in ``<out>/progress.json`` so a restart continues where it stopped:

1. ``codec``: autoencoder on single latent frames (``temporal`` frames each), MSE + L1, small
   noise on the latents so the decoder tolerates the sampler's errors. Then ``latent_scale`` is
   set so latents have unit standard deviation. A trained run asked for more ``codec_steps``
   continues its codec (a leg of its own from ``codec_schedule_from``), then phase 2 runs again
   and the denoiser continues on the new latents, at the same ``latent_scale``.
2. ``encode``: the whole dataset is encoded once to latents (``<out>/latents.npy``).
3. ``denoiser``: flow matching on windows of ``history_chunks + 2`` chunks with the levels of
   ``world.core.schedule.training_levels`` (clean context prefix, then non-decreasing noise), loss on
   noisy chunks only, caption dropout, AdamW, warm-up and cosine decay, gradient clipping, EMA.
   The EMA weights are what gets exported. The loop is ``world/train/denoiser.py``; the codec's,
   ``world/train/codec.py``.

Every ``eval_every`` steps it prints the diagnostic that matters (the "prediction from noise"
docs/training-log.md quotes for every leg): PSNR of the clean chunk predicted from pure noise
given clean history, against copying the last frame.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from itertools import chain
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from tqdm import tqdm

from world.core.checkpoint import load_matching, read_config, save_checkpoint
from world.core.codec import codec_setting, codec_text
from world.core.config import CodecConfig, ModelConfig, preset
from world.core.denoiser import Block
from world.core.model import WorldModel
from world.core.text import FrozenTextEncoder, HashTextEncoder, load_backend, vocabulary
from world.eval.figures import pyplot
from world.train.codec import codec_quality, codec_step, encode_dataset, train_codec
from world.train.denoiser import train_denoiser
from world.train.trainkit import (
    MetricsLog,
    TrainConfig,
    init_dist,
    load_arrays,
    run_command,
)


def data_shape(cfg: ModelConfig, data: str) -> ModelConfig:
    """``cfg`` with the frame size and action names of the dataset at ``data``: the model learns
    whatever game the data shows, with no per-game code."""
    from world.train.data import Dataset

    meta = Dataset(data).meta
    h, w = meta.frame_size
    if any(s % 16 or not 16 <= s <= 128 for s in (h, w)):
        raise ValueError(
            f"{data}: frames of {h}x{w}; the model trains frames whose sides are multiples of "
            "16 from 16 to 128"
        )
    codec = replace(cfg.codec, frame_size=h, frame_width=0 if w == h else w)
    return cfg.replace(codec=codec, actions=tuple(meta.actions))


def run_shape(tc: TrainConfig, progress: dict, out: Path) -> tuple[ModelConfig, str]:
    """The run's model config from the preset, ``--init-from``'s codec setting, ``--codec``,
    ``--depth`` and ``--local-conv``, and its codec as text; raises ValueError when a resumed run (``progress``) started with another codec or
    shape."""
    cfg = data_shape(preset(tc.preset), tc.data)
    base = cfg.codec
    if tc.init_from:  # fine-tuning keeps the source's codec setting, at the preset's frame size
        source = read_config(tc.init_from)[0].codec
        base = replace(
            source,
            frame_size=base.frame_size,
            frame_width=base.frame_width,
            latent_scale=base.latent_scale,
        )
    cfg = cfg.replace(codec=codec_setting(tc.codec, base))
    if tc.depth:
        cfg = cfg.replace(denoiser=replace(cfg.denoiser, depth=tc.depth))
    if tc.pixel_history:
        cfg = cfg.replace(sampler=replace(cfg.sampler, pixel_history=True))
    if tc.local_conv:
        if tc.local_conv < 0:
            raise ValueError(
                f"--local-conv {tc.local_conv}: give the local branch's channels (e.g. 96), or 0 "
                f"for the preset's ({cfg.denoiser.local_conv})"
            )
        cfg = cfg.replace(denoiser=replace(cfg.denoiser, local_conv=tc.local_conv))
    if progress.get("depth", cfg.denoiser.depth) != cfg.denoiser.depth:
        raise ValueError(
            f"{out} was started with {progress['depth']} denoiser blocks; this call asks for "
            f"{cfg.denoiser.depth}: resume it with --depth {progress['depth']}, or give a new --out"
        )
    if progress.get("local_conv", cfg.denoiser.local_conv) != cfg.denoiser.local_conv:
        raise ValueError(
            f"{out} was started with a local branch of {progress['local_conv']} channels; this "
            f"call asks for {cfg.denoiser.local_conv}: resume it with --local-conv "
            f"{progress['local_conv']}, or give a new --out"
        )
    codec_now, codec_then = codec_text(cfg.codec), progress.get("codec_setting")
    if codec_then:  # parsed, so that a field added since (at its default) is no change
        changed = codec_text(codec_setting(codec_then, CodecConfig())) != codec_now
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
    cfg, codec_now = run_shape(tc, progress, out)
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
            if init_cfg.prior.width:  # trained for the old latents and denoiser: not carried
                tqdm.write(
                    f"init: {tc.init_from}'s dynamics prior is not carried; train one for the "
                    "new model with chunkworld train-prior"
                )
        if not any(n.startswith("codec.") for n in kept):
            init_scale = init_cfg.codec.latent_scale
        for i, block in enumerate(model.denoiser.blocks):
            if i >= init_cfg.denoiser.depth and isinstance(block, Block):  # one it lacks
                block.shut_gates()  # passes its input through
    data = load_arrays(tc.data, cfg)
    if isinstance(model.text, HashTextEncoder):  # the words it trains on, so play can spell others
        before = init_cfg.text.known_words if tc.init_from else ()
        cfg = cfg.replace(
            text=replace(cfg.text, known_words=vocabulary(chain(*data.captions), also=before))
        )
        model.text.know(cfg.text)
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
        progress["local_conv"] = cfg.denoiser.local_conv
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
    """Loss curves and the from-noise diagnostic to ``<out>/metrics.png`` (needs matplotlib): one
    panel per phase the run logged, so a run from a checkpoint with no codec steps shows its
    denoiser's loss and diagnostic only."""
    if not (out / "metrics.jsonl").exists():  # a run of no steps: nothing to plot
        return None
    plt = pyplot()
    if plt is None:
        return None
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    by_phase = {p: [x for x in rows if x["phase"] == p] for p in ("codec", "denoiser", "eval")}
    shown = [p for p, r in by_phase.items() if r]
    if not shown:
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(4.4 * len(shown), 3.5), squeeze=False)
    for ax, phase in zip(axes[0], shown, strict=True):
        r = by_phase[phase]
        steps = [x["step"] for x in r]
        if phase == "eval":
            ax.plot(steps, [x["pred_from_noise_db"] for x in r], label="from noise")
            ax.plot(steps, [x["copy_last_db"] for x in r], label="copy last")
            ax.set(title="one-step PSNR (dB)", xlabel="step")
            ax.legend()
        else:
            ax.plot(steps, [x["loss"] for x in r])
            ax.set(title=f"{phase} loss", xlabel="step", yscale="log")
    fig.tight_layout()
    fig.savefig(out / "metrics.png", dpi=90)
    plt.close(fig)
    return out / "metrics.png"


def main(argv: list[str] | None = None) -> None:
    run_command(TrainConfig, "python -m world.train", __doc__, run, argv)


if __name__ == "__main__":
    main()
