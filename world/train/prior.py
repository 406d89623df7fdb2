"""Train a dynamics prior for a trained model: the sampler starts each chunk from its guess.

::

    chunkworld train-prior --model default --data data/long3 --out runs/prior --level 0.15

``world/core/prior.py`` says what the prior is and how the sampler uses it. This trains one for a
model's latents, the model itself unchanged: from the two latent frames before a chunk (noised
to the model's ``context_level``, as the cache holds them) and the chunk's actions, it unrolls
the chunk one latent frame at a time, each prediction feeding the next, and the squared error
of every frame against the true latents is the loss. So it trains on the unrolled chunk the
sampler asks of it, not only one frame after the truth.

AdamW, warm-up and cosine decay, gradient clipping, bf16 autocast where the CPU has native bf16.
Resumable: the prior and optimizer state sit in ``<out>/prior_state.safetensors``, and step
``i`` draws its windows and noise from generators seeded by ``(seed, i)``, so a resumed run
trains exactly as an uninterrupted one. The data's last clips (a tenth, from 1 to 16, as
``chunkworld train`` holds out) are never trained on; every ``eval_every`` steps the prior's
chunks for ``eval_windows`` of their windows are scored: their latent error and, where the clips
carry the player's place (``player_x``, ``player_y`` in their state, as the built-in game's do),
the share of decoded frames with the player found 1 px or more off it, both logged to
``<out>/metrics.jsonl``. The result is ``<out>/model``: the source
checkpoint with the prior, its config's ``sampler.prior_level`` set to ``--level``, and a record
of the training (``prior_training``).

Latents: the data are encoded with the model's encoder (a minute or two for 750 clips of 256
frames), or read from ``--latents``, a run's ``latents.npy`` for this model's encoder.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as fn
from torch import nn
from tqdm import tqdm

from world.core.checkpoint import load_checkpoint, save_checkpoint
from world.core.config import PriorConfig
from world.core.cpus import bf16_enabled
from world.core.model import WorldModel
from world.core.schedule import add_noise, salience_weight
from world.eval.detect import player_errors
from world.train.codec import encode_dataset
from world.train.data import ClipBatch, Dataset
from world.train.denoiser import held_out_clips
from world.train.trainkit import (
    Arrays,
    MetricsLog,
    due,
    lr_at,
    resume_part,
    run_command,
    save_part,
    train_only,
)

STATE_FILE = "prior_state.safetensors"
LOSSES = ("mse", "l1")  # what the prior can be trained to minimise: squared or absolute error


@dataclass
class PriorTraining:
    model: str = "default"  # checkpoint directory the prior is trained for ("default": shipped)
    data: str = (
        "data/long3"  # dataset directory (world/train/data.py format) with the player's state
    )
    out: str = "runs/prior"  # run directory: state, metrics, and the model with its prior
    latents: str = (
        ""  # the data's latents for this model's encoder (a run's latents.npy); "": encode
    )
    steps: int = 6000  # prior steps
    batch: int = 32  # chunks per step, each unrolled over its latent frames
    lr: float = 1e-3  # the prior starts from scratch
    warmup: int = 100  # steps of linear warm-up
    clip_grad: float = 1.0  # gradient norm clipped to this
    width: int = 128  # channels of the prior's convolutions (a multiple of 8)
    blocks: int = 4  # its residual blocks
    # the level the sampler starts an unprompted chunk from, written into the model's config
    # (sampler.prior_level; docs/training-log.md, "A dynamics prior", measured 0.15 to 0.7)
    level: float = 0.15
    eval_every: int = 1000  # scores the held-out windows every this many steps and at the last
    eval_windows: int = 256  # held-out chunks scored
    save_every: int = 250  # saves its state every this many steps and at the last
    seed: int = 0  # of the prior's initial weights, window order and noise
    # chunks unrolled per window in training, each fed the last two latent frames of the chunk the
    # prior itself guessed before it (noised as the cache holds them): its own errors as input.
    # Defaults 4 and a sprite weight of 8, which chunkworld train's prior stage takes too: the
    # shipped prior, trained at 1 and 0, keeps a still player in place far more often once
    # fine-tuned at these (docs/training-log.md, 2026-12-07)
    unroll: int = 4
    salience: float = 8.0  # extra loss weight on the tokens that hold sprites or moved
    keep_prior: bool = False  # start from the source model's prior (same width and blocks)
    loss: str = "mse"  # "mse": squared error; "l1": absolute (a median of what may come)
    precision: str = "auto"  # as chunkworld train: bf16 autocast only on CPUs with native bf16
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"loss": LOSSES}  # the flag refuses others


def train_prior(tc: PriorTraining) -> Path:
    """Train a prior for ``tc.model`` on ``tc.data``; returns the path of the model with it.

    Raises:
        CheckpointError: ``tc.model`` is not a loadable checkpoint.
        ValueError: bad settings, data that do not fit the model or are too few or short, or
            ``latents`` that do not fit the data.
    """
    if tc.loss not in LOSSES:
        raise ValueError(f"--loss {tc.loss!r}: give one of {', '.join(LOSSES)}")
    if not 0.0 < tc.level < 1.0:
        raise ValueError(f"--level {tc.level:g}: give the level to start chunks from, in (0, 1)")
    source, doc = load_checkpoint(tc.model)
    cfg = source.cfg.replace(
        prior=PriorConfig(width=tc.width, blocks=tc.blocks),
        sampler=replace(source.cfg.sampler, prior_level=tc.level),
    )  # raises with the fix for a bad width or block count
    torch.manual_seed(tc.seed)
    model = WorldModel(cfg).eval()
    missing, unexpected = model.load_state_dict(
        {k: v for k, v in source.state_dict().items() if not k.startswith("prior.")}, strict=False
    )
    assert not unexpected and all(k.startswith("prior.") for k in missing)
    if tc.keep_prior:
        model.load_state_dict(source.state_dict())
    prior = model.prior
    assert prior is not None
    ds = Dataset(tc.data)
    fields = ds.meta.state_fields or ()
    clips = ds.load_all()
    # the player's place in every clip (data of chunkworld data generate carry it): scored then
    placed = clips.state is not None and {"player_x", "player_y"} <= set(fields)
    cached = Path(tc.out) / "latents.npy"  # encoded once per run; a resume reads them back
    z = dataset_latents(
        model, clips, tc.data, tc.latents or (str(cached) if cached.exists() else None)
    )
    if not tc.latents and not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, z.numpy())
    k, tl = cfg.codec.temporal, cfg.latent_frames
    n, t_lat = z.shape[:2]
    if t_lat < 2 + tl:
        raise ValueError(
            f"{tc.data}: clips of {t_lat} latent frames; the prior needs {2 + tl} (two before a "
            f"chunk of {tl}): generate longer clips"
        )
    xy = [fields.index("player_x"), fields.index("player_y")] if placed else []
    acts = torch.from_numpy(clips.actions[:, : t_lat * k].astype(np.int64))
    held = held_out_clips(n)
    if n - held < 1:
        raise ValueError(f"{tc.data}: {n} clips; the prior needs at least 2 (some are held out)")

    params, opt = train_only(model, prior, tc.lr)
    prior.train()
    out = Path(tc.out)
    out.mkdir(parents=True, exist_ok=True)
    state = out / STATE_FILE
    start = resume_part(
        state,
        prior,
        "prior",
        opt,
        f"saved with another --width or --blocks than {tc.width} and {tc.blocks}; resume with "
        "the run's own settings, or pass a new --out",
    )
    log = MetricsLog(out, 0)
    bf16 = bf16_enabled(tc.precision)
    level = cfg.sampler.context_level

    def chunks(c: np.ndarray, t: np.ndarray, gen: torch.Generator, unroll: int = 1) -> torch.Tensor:
        """(B, unroll * Tl, C, h, w): the prior's chunks from latent frame ``t`` on, each after
        the last two frames of the one before (the truth before the first)."""
        last = z[c[:, None], t[:, None] + np.arange(-2, 0)]  # (B, 2, C, h, w)
        out = []
        for u in range(unroll):
            last = add_noise(last, torch.randn(last.shape, generator=gen), level)
            a = acts[c[:, None], (t[:, None] + u * tl) * k + np.arange(tl * k)]  # (B, F)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                pred = prior(last, a).float()
            out.append(pred)
            last = torch.cat([last, pred], 1)[:, -2:]
        return torch.cat(out, 1)

    rng = np.random.default_rng([tc.seed, 1])  # the held-out windows scored, the same every time
    ev_c, ev_t = (
        rng.integers(n - held, n, tc.eval_windows),
        rng.integers(2, t_lat - tl + 1, tc.eval_windows),
    )

    def score(step: int) -> dict[str, float]:
        prior.eval()
        with torch.no_grad():
            pred = chunks(ev_c, ev_t, torch.Generator().manual_seed(tc.seed))
        prior.train()
        truth = clips.state
        row = _placement(model, truth, xy, pred, ev_c, ev_t) if truth is not None and xy else {}
        row["latent_mse"] = float(
            fn.mse_loss(pred, z[ev_c[:, None], ev_t[:, None] + np.arange(tl)])
        )
        log(phase="prior_eval", step=step, **row)
        return row

    if start == 0:
        score(0)
    bar = tqdm(range(start, tc.steps), desc="prior", initial=start, total=tc.steps)
    t0 = time.perf_counter()
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc.steps, tc.lr, tc.warmup)
        draw = np.random.default_rng([tc.seed, 0, step])  # per step, so a resume draws the same
        span = tc.unroll * tl
        c, t = draw.integers(0, n - held, tc.batch), draw.integers(2, t_lat - span + 1, tc.batch)
        gen = torch.Generator().manual_seed(tc.seed * 1_000_003 + step)
        pred = chunks(c, t, gen, tc.unroll)
        truth = z[c[:, None], t[:, None] + np.arange(-1, span)]  # the frame before, then the span
        weight = salience_weight(truth[:, None], tc.salience)[:, 0, 1:]  # (B, span, 1, h, w)
        miss = pred - truth[:, 1:]
        err = miss.pow(2) if tc.loss == "mse" else miss.abs()
        loss = (err * weight).sum() / (weight.sum() * err.shape[2])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, tc.clip_grad)
        opt.step()
        if step % 10 == 0:
            rate = (step + 1 - start) * tc.batch / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{loss.item():.4f}", chunks_s=f"{rate:.0f}")
            log(phase="prior", step=step, loss=loss.item())
        if due(step + 1, tc.eval_every) or step + 1 == tc.steps:
            row = score(step + 1)
            placed_note = (
                f"player 1 px or more off in {row['one_px_off']:.2%} of frames, " if xy else ""
            )
            bar.write(
                f"step {step + 1}: held out, {placed_note}latent error {row['latent_mse']:.4f}"
            )
        if due(step + 1, tc.save_every) or step + 1 == tc.steps:
            save_part(state, prior, "prior", opt, step + 1)
    prior.eval()
    return _export(model, doc, tc, out)


def dataset_latents(
    model: WorldModel, clips: ClipBatch, data: str, latents: str | None, progress: bool = True
) -> torch.Tensor:
    """(N, T, C, h, w) the clips' latents for ``model``'s encoder: read from ``latents`` (a run's
    ``latents.npy``), checked against the clips, or encoded here.

    Raises:
        ValueError: the clips do not fit the model, or ``latents`` does not fit the clips.
    """
    cfg = model.cfg
    k, n = cfg.codec.temporal, len(clips.frames)
    if clips.frames.shape[2:4] != cfg.frame_shape[:2]:
        h, w = clips.frames.shape[2:4]
        mh, mw, _ = cfg.frame_shape
        raise ValueError(
            f"{data}: frames of {h}x{w} px; the model needs {mh}x{mw}: give data recorded at "
            "the model's size"
        )
    t_lat = clips.frames.shape[1] // k
    if latents is None:
        whole = Arrays(clips.frames[:, : t_lat * k], clips.actions, clips.captions)
        return torch.from_numpy(encode_dataset(model, whole, progress=progress))
    z = torch.from_numpy(np.load(latents, mmap_mode="r")[:, :t_lat].copy())
    if z.shape[:2] != (n, t_lat) or z.shape[2] != cfg.codec.latent_channels:
        raise ValueError(
            f"{latents}: latents of shape {tuple(z.shape)} do not fit {data} ({n} clips of "
            f"{t_lat} latent frames, {cfg.codec.latent_channels} channels)"
        )
    return z


def _placement(
    model: WorldModel,
    state: np.ndarray,
    xy: list[int],
    pred: torch.Tensor,
    c: np.ndarray,
    t: np.ndarray,
) -> dict[str, float]:
    """The player in the decoded chunks ``pred`` (B, Tl, ...) of windows (clip ``c``, first
    latent frame ``t``) against the clips' ``state`` (columns ``xy``: the player's place): shares of frames 1 px or more off and within 2 px, and of the chunks' last frames
    1 px or more off."""
    k, tl = model.cfg.codec.temporal, pred.shape[1]
    frame = (t[:, None] + np.arange(tl)) * k + k - 1  # the last frame each latent frame stands for
    true = state[c[:, None], frame][..., xy].reshape(-1, 2)
    with torch.no_grad():
        drawn = model.codec.decode(pred.flatten(0, 1)[:, None])[:, -1].numpy()
    error, _ = player_errors(drawn, true)
    error = error.reshape(-1, tl)
    return {
        "one_px_off": round(float(np.mean(error >= 1.0)), 4),
        "within_2px": round(float(np.mean(error <= 2.0)), 4),
        "last_frame_one_px_off": round(float(np.mean(error[:, -1] >= 1.0)), 4),
    }


def _export(model: WorldModel, doc: dict[str, Any], tc: PriorTraining, out: Path) -> Path:
    """Write ``<out>/model``: the source checkpoint's config and card with the prior, and a
    record of this training (settings, held-out figures first and last) as ``prior_training``."""
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["phase"] == "prior_eval"]
    first = max(i for i, r in enumerate(evals) if r["step"] == 0)  # this run's start
    keep = ("step", "one_px_off", "within_2px", "last_frame_one_px_off", "latent_mse")
    held = [{k: evals[i][k] for k in keep if k in evals[i]} for i in (first, -1)]
    record = {**asdict(tc), "held_out": held}
    extra = {k: v for k, v in doc.items() if k not in ("format_version", "model")}
    extra["prior_training"] = record
    path = save_checkpoint(model, out / "model", extra)
    last = held[-1]
    tqdm.write(
        f"prior: held-out latent error {last['latent_mse']:.4f}"
        + (
            f", player 1 px or more off in {last['one_px_off']:.2%} of frames"
            if "one_px_off" in last
            else ""
        )
        + f"; model with the prior (sampler.prior_level {tc.level:g}) in {path}"
    )
    return path


def main(argv: list[str] | None = None) -> None:
    run_command(PriorTraining, "chunkworld train-prior", __doc__, train_prior, argv)


if __name__ == "__main__":
    main()
