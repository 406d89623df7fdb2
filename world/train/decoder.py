"""Sharpen a trained model's decoder while its encoder, latents and denoiser stay as they are.

::

    chunkworld tune-decoder --model default --data data/long --out runs/decoder --steps 10000

The codec is trained first and then frozen, because the denoiser learns its latents. A longer
codec leg in ``chunkworld train`` changes the encoder too: the data are encoded anew and the
denoiser spends thousands of steps relearning the new latents (121 min for the shipped default's
last codec change). The decoder alone can go on learning without touching any of that: with the
encoder frozen every latent stays what it was, so the denoiser, its training data and a
session's cache all stay valid, and frames come out sharper at the same cost per tick (unless
the decoder grows, below).

A decoder that has levelled off can grow: ``--decoder-blocks N`` gives it ``N`` residual blocks
at its finest level (the codec's ``decoder_blocks``; :func:`resize_decoder`), each new one starting
as the identity, so the tuning starts from exactly the frames the trained decoder drew. Fewer
than it has keeps its first ``N`` and drops the rest, for a cheaper tick: the frames change a
little, and the tuning draws them back (the default's last three blocks added 0.08 dB). The shipped
default's, levelled off at 28.45 dB held out (28.55 on other clips), reached 35.31 dB grown to
three, six and nine, and 35.49 dB after a last tuning on noisier latents (``--latent-noise
0.1``), which drew the rollouts' drifted latents better (docs/training-log.md, "A deeper
decoder"); each block costs time per frame.

Loss: the codec's own (:func:`world.train.codec.codec_loss`: MSE + L1, sprites weighted, a little
noise on the latents), with gradients only into the decoder. AdamW, warm-up and cosine decay,
gradient clipping, bf16 autocast where the CPU has native bf16. Resumable: the decoder and
optimizer state sit in ``<out>/decoder_state.safetensors``, and step ``i`` draws its batch and
its latent noise from generators seeded by ``(seed, i)``, so a resumed run trains exactly as an
uninterrupted one. The last ``held_out`` clips of the data are never trained on; their
reconstruction PSNR is logged to ``<out>/metrics.jsonl`` every ``eval_every`` steps. The result
is ``<out>/model``: the source checkpoint with the new decoder and a record of the tuning in its
config (``decoder_tuning``).

Tried and not kept: training the decoder also on the model's own one-step predictions paired
with the true frames. On held-out predictions it did no better than true latents alone (23.99
against 24.04 dB after 1,000 steps on the shipped default, 2026-11-30): the prediction's errors
are not something a decoder can undo.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from world.core.checkpoint import load_checkpoint, save_checkpoint
from world.core.model import WorldModel
from world.train.codec import codec_loss, latent_frames, reconstruction_psnr
from world.train.trainkit import (
    MetricsLog,
    due,
    load_arrays,
    lr_at,
    resume_part,
    run_command,
    save_part,
    train_only,
)

STATE_FILE = "decoder_state.safetensors"


@dataclass
class DecoderTuning:
    model: str = "default"  # checkpoint directory whose decoder is tuned ("default": the shipped)
    data: str = (
        "data/long"  # dataset directory (world/train/data.py format) at the model's geometry
    )
    out: str = "runs/decoder"  # run directory: state, metrics, and the tuned model in out/model
    steps: int = 10000  # decoder steps
    batch: int = 32  # latent frames per step
    lr: float = 3e-4  # a fine-tuning rate: the decoder is trained already
    warmup: int = 100  # steps of linear warm-up
    clip_grad: float = 1.0  # gradient norm clipped to this
    # noise on the latents the decoder sees, times their std (the codec phase ends at 0.02)
    latent_noise: float = 0.02
    held_out: int = 8  # last clips of the data, never trained on, for the logged PSNR
    # logs the held-out PSNR every this many steps and at the last (0: the last only)
    eval_every: int = 500
    save_every: int = 250  # saves its state every this many steps and at the last (0: last only)
    seed: int = 0  # of batch order and latent noise
    precision: str = "auto"  # as chunkworld train: bf16 autocast only on CPUs with native bf16
    # residual blocks at the decoder's finest level (the codec's decoder_blocks): -1 keeps the
    # model's; more grows its decoder, each new block starting as the identity; fewer keeps its
    # first blocks and drops the rest
    decoder_blocks: int = -1
    # store the tuned model's float32 weights as bfloat16: half the bytes, frames as at play
    # under bf16 autocast (world/core/checkpoint.py save_checkpoint)
    half: bool = False


def tune_decoder(tc: DecoderTuning) -> Path:
    """Fine-tune the decoder of ``tc.model`` on ``tc.data``; returns the tuned checkpoint's path.

    Raises:
        CheckpointError: ``tc.model`` is not a loadable checkpoint.
        ValueError: the data do not fit the model, or are too few to hold clips out.
    """
    model, doc = load_checkpoint(tc.model)
    if tc.decoder_blocks >= 0:
        model = resize_decoder(model, tc.decoder_blocks)
    data = load_arrays(tc.data, model.cfg)
    if len(data.frames) <= tc.held_out:
        raise ValueError(
            f"{tc.data}: {len(data.frames)} clips, but {tc.held_out} are held out for the logged "
            "PSNR: generate more clips or pass a smaller --held-out"
        )
    train_frames = data.frames[: len(data.frames) - tc.held_out]
    k = model.cfg.codec.temporal
    held = data.frames[-tc.held_out :, : min(32, data.frames.shape[1]) // k * k]  # (N, T, ...)
    codec = model.codec
    params, opt = train_only(model, codec.decoder, tc.lr)
    out = Path(tc.out)
    out.mkdir(parents=True, exist_ok=True)
    state = out / STATE_FILE
    start = resume_part(
        state,
        codec.decoder,
        "decoder",
        opt,
        f"saved with another --decoder-blocks than {codec.cfg.decoder_blocks}; resume with the "
        "run's own setting, or pass a new --out",
    )
    log = MetricsLog(out, 0)
    if start == 0:
        log(phase="decoder_eval", step=0, held_out_psnr_db=reconstruction_psnr(codec, held))
    bar = tqdm(range(start, tc.steps), desc="decoder", initial=start, total=tc.steps)
    t0 = time.perf_counter()
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc.steps, tc.lr, tc.warmup)
        torch.manual_seed(tc.seed * 1_000_003 + step)  # the latent noise, as the batch: per step
        # the batch from a generator of its own, so a resumed run draws what an uninterrupted one
        frames = latent_frames(train_frames, k, tc.batch, np.random.default_rng([tc.seed, step]))
        loss = codec_loss(codec, frames, tc.precision, tc.latent_noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, tc.clip_grad)
        opt.step()
        if step % 10 == 0:
            rate = (step + 1 - start) * tc.batch * k / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{loss.item():.4f}", frames_s=f"{rate:.0f}")
            log(phase="decoder", step=step, loss=loss.item())
        if due(step + 1, tc.eval_every) or step + 1 == tc.steps:
            score = reconstruction_psnr(codec, held)
            log(phase="decoder_eval", step=step + 1, held_out_psnr_db=score)
            bar.write(f"step {step + 1}: held-out reconstruction {score:.2f} dB")
        if due(step + 1, tc.save_every) or step + 1 == tc.steps:
            save_part(state, codec.decoder, "decoder", opt, step + 1)
    return _export(model, doc, tc, out)


def resize_decoder(model: WorldModel, blocks: int) -> WorldModel:
    """``model`` with ``blocks`` residual blocks at its decoder's finest level. Growing keeps its
    own blocks and adds identity ones, so the returned model draws exactly the frames ``model``
    does; shrinking keeps its first ``blocks`` and drops the later ones (each block adds to what
    the ones before it drew, so the first ones carry most of it)."""
    have = model.cfg.codec.decoder_blocks
    if blocks == have:
        return model
    cfg = model.cfg.replace(codec=replace(model.cfg.codec, decoder_blocks=blocks))
    resized = WorldModel(cfg)
    state = {
        name: value
        for name, value in model.state_dict().items()
        if not name.startswith("codec.decoder.refine.") or int(name.split(".")[3]) < blocks
    }
    missing, unexpected = resized.load_state_dict(state, strict=False)
    assert not unexpected and all(n.startswith("codec.decoder.refine.") for n in missing)
    return resized.eval()


def _export(model: WorldModel, doc: dict[str, Any], tc: DecoderTuning, out: Path) -> Path:
    """Write ``<out>/model``: the source checkpoint's config and card, the tuned decoder, and a
    record of this tuning (settings, held-out PSNR before and after) appended to the list
    ``decoder_tuning``."""
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["phase"] == "decoder_eval"]
    first = max(i for i, r in enumerate(evals) if r["step"] == 0)  # this run's start, not a
    scores = [r["held_out_psnr_db"] for r in evals[first:]]  # deleted earlier run's
    record = {**asdict(tc), "held_out_psnr_db": [scores[0], scores[-1]]}
    extra = {k: v for k, v in doc.items() if k not in ("format_version", "model")}
    extra["decoder_tuning"] = [*doc.get("decoder_tuning", []), record]  # one record per tuning
    path = save_checkpoint(model, out / "model", extra, half=tc.half)
    tqdm.write(
        f"decoder: held-out reconstruction {scores[0]:.2f} -> {scores[-1]:.2f} dB; "
        f"tuned model in {path}"
    )
    return path


def main(argv: list[str] | None = None) -> None:
    run_command(DecoderTuning, "chunkworld tune-decoder", __doc__, tune_decoder, argv)


if __name__ == "__main__":
    main()
