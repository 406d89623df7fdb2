"""Diagnostics: does the loss weight the sprites, what would another codec give, and where does
action following fail?

    chunkworld diagnose salience --data data/train --latents runs/small4/latents.npy
    chunkworld diagnose codec --data data/train --steps 800 --codec latent_channels=64
    chunkworld diagnose following --model world/models/default   # see world/eval/following.py
    chunkworld diagnose dynamics --model default --data data/long3   # see world/eval/probe.py

``salience``: the denoiser's loss gives extra weight to the latent tokens :func:`world.core.schedule.salience_weight`
picks. This checks the pick against the truth: the sprite tokens of each latent frame, found by
:mod:`world.eval.detect` on the true frames (a token holds a sprite when at least ``min_pixels`` of its
pixels, in any of the frames it stands for, are the player, a bolt or a ball). It prints, per
weather, the share of player and ball tokens the rule weights and the share of all tokens it
weights, as JSON. It asserts nothing.

``codec``: trains a fresh codec per ``--codec`` setting (fields of the ``small`` preset's codec
overridden, e.g. ``latent_channels=64`` or ``patch=2,widths=64/128/128``) for the same steps and
batch as each other, and prints each one's reconstruction PSNR on held-out clips, its parameters
and its decode time per chunk: a cheap look at whether a codec setting is worth a full training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from world.core.codec import Codec, codec_setting
from world.core.config import CodecConfig
from world.core.cpus import PRECISIONS, warn_if_busy
from world.core.schedule import salience_weight
from world.eval.detect import FIRST_PALETTE, LABELS, classify, player_errors
from world.games.arcade import GameConfig
from world.games.captions import WEATHERS
from world.train.codec import codec_loss, reconstruction_psnr
from world.train.data import Dataset
from world.train.trainkit import lr_at

__all__ = ["codec_capacity", "codec_setting", "salience_coverage", "sprite_tokens"]

_PLAYER = LABELS.index("player")
_BOLT = LABELS.index("projectile")


def sprite_tokens(
    frames: np.ndarray, grid: int, temporal: int, wall: int, min_pixels: int = 4
) -> dict[str, np.ndarray]:
    """Which latent tokens hold the player and which hold balls or bolts.

    Args:
        frames: uint8 (T, H, W, 3) true frames of the built-in game; T a multiple of ``temporal``.
        grid: side of the latent grid (tokens per row); H must be a multiple of it.
        temporal: frames per latent frame.
        wall: border width in pixels (walls share the balls' palette; they are left out).
        min_pixels: pixels of a sprite a token must hold in one of its frames.

    Returns:
        ``{"player": bool (T / temporal, grid, grid), "balls": bool (same)}``.
    """
    t, h, w = frames.shape[:3]
    if t % temporal or h % grid or w % grid:
        raise ValueError(
            f"frames {frames.shape[:3]} must split into latent frames of {temporal} and a "
            f"{grid}x{grid} token grid"
        )
    inner = np.zeros((h, w), dtype=bool)
    inner[wall : h - wall, wall : w - wall] = True
    out = {"player": np.zeros((t // temporal, grid, grid), bool)}
    out["balls"] = np.zeros_like(out["player"])
    ph, pw = h // grid, w // grid
    for i in range(t):
        lab = classify(frames[i])
        masks = {
            "player": lab == _PLAYER,
            "balls": ((lab >= FIRST_PALETTE) | (lab == _BOLT)) & inner,
        }
        for name, m in masks.items():
            count = m.reshape(grid, ph, grid, pw).sum(axis=(1, 3))
            out[name][i // temporal] |= count >= min_pixels
    return out


def salience_coverage(
    data: str | Path, latents: str | Path, clips: int = 50, share: float = 0.1
) -> dict[str, Any]:
    """Share of sprite tokens (and of all tokens) that :func:`salience_weight` weights, per
    weather, over ``clips`` clips spread evenly over the dataset."""
    ds = Dataset(data)
    lat = np.load(latents, mmap_mode="r")  # (N, Tl, C, h, w)
    if len(lat) != len(ds):
        raise ValueError(f"{latents} holds {len(lat)} clips but {data} has {len(ds)}")
    fields = ds.meta.state_fields or ()
    if "weather" not in fields:
        raise ValueError(f"{data} has no 'weather' state column: not the built-in game's data")
    col = fields.index("weather")
    grid, tl = lat.shape[-1], lat.shape[1]
    wall = GameConfig.for_size(ds.meta.frame_size[0]).wall
    counts: dict[str, dict[str, list[int]]] = {}
    for ci in np.linspace(0, len(ds) - 1, min(clips, len(ds))).round().astype(int):
        clip = ds[int(ci)]
        if clip.state is None:
            raise ValueError(f"clip {clip.id} has no state")
        temporal = len(clip.frames) // tl
        z = torch.from_numpy(np.array(lat[ci]))[None, None]  # (1, 1, Tl, C, h, w)
        picked = (salience_weight(z, boost=1.0, share=share) > 1)[0, 0, :, 0].numpy()
        truth = sprite_tokens(clip.frames, grid, temporal, wall)
        for j in range(tl):
            weather = WEATHERS[int(clip.state[j * temporal, col])]
            c = counts.setdefault(weather, {"player": [0, 0], "balls": [0, 0], "all": [0, 0]})
            for name, m in truth.items():
                c[name][0] += int(m[j].sum())
                c[name][1] += int((m[j] & picked[j]).sum())
            c["all"][0] += picked[j].size
            c["all"][1] += int(picked[j].sum())
    return {
        "share": share,
        "clips": int(min(clips, len(ds))),
        "weather": {
            w: {
                k: {"tokens": n, "weighted": round(hit / n, 4) if n else None}
                for k, (n, hit) in c.items()
            }
            for w, c in sorted(counts.items())
        },
    }


def codec_capacity(
    data: str | Path,
    settings: list[CodecConfig],
    steps: int = 800,
    batch: int = 16,
    lr: float = 2e-3,
    held_out: int = 16,
    precision: str = "auto",
) -> Iterator[dict[str, Any]]:
    """Train a fresh codec per setting on the same batches; yield its held-out PSNR and speed.

    The last ``held_out`` clips are held out; PSNR is the median over them of the reconstruction
    of their first 8 frames (or fewer if the codec's temporal factor needs it). Where the data
    carry the player's true position (the built-in game's state), the round trip of their first
    32 frames also gives the share of frames with a moving player that keep it within 2 px, and
    the mean signed error along its motion per position inside a latent frame
    (:func:`world.eval.detect.player_errors`, as :mod:`world.eval.following` uses it): whether the codec
    keeps the timing of the frames it packs together.
    """
    ds = Dataset(data)
    clips = ds.load_all()
    frames = clips.frames  # (N, T, H, W, 3)
    fields = ds.meta.state_fields or ()
    player = (
        clips.state[..., [fields.index("player_x"), fields.index("player_y")]]
        if clips.state is not None and {"player_x", "player_y"} <= set(fields)
        else None
    )  # (N, T, 2) or None
    if len(frames) <= held_out:
        raise ValueError(f"{data} has {len(frames)} clips; need more than held_out={held_out}")
    train_n = len(frames) - held_out
    for i, cfg in enumerate(settings):
        if cfg.frame_size != frames.shape[2]:
            raise ValueError(
                f"codec frame_size {cfg.frame_size} but the data is {frames.shape[2]} px"
            )
        if frames.shape[1] < cfg.temporal:
            raise ValueError(f"clips of {frames.shape[1]} frames; the codec needs {cfg.temporal}")
        torch.manual_seed(0)
        codec, k = Codec(cfg), cfg.temporal
        opt = torch.optim.AdamW(codec.parameters(), lr=lr, weight_decay=0.0)
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        for step in tqdm(range(steps), desc=f"codec {i + 1}/{len(settings)}"):
            for g in opt.param_groups:
                g["lr"] = lr_at(step, steps, lr, min(50, steps // 10))
            ci = rng.integers(0, train_n, batch)
            fi = rng.integers(0, frames.shape[1] // k, batch) * k
            loss = codec_loss(
                codec,
                np.stack([frames[c, f : f + k] for c, f in zip(ci, fi, strict=True)]),
                precision,
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(codec.parameters(), 1.0)
            opt.step()
        train_s = time.perf_counter() - t0
        n = min(8, frames.shape[1]) // k * k
        hold = frames[train_n:, :n]
        psnr_db = reconstruction_psnr(codec, hold)
        z = codec.encode(torch.from_numpy(hold[:1]))  # encode and decode run without grad
        times = []
        for _ in range(10):
            t = time.perf_counter()
            codec.decode(z)
            times.append(time.perf_counter() - t)
        row: dict[str, Any] = {}
        if player is not None:
            row = _moving_player(codec, frames[train_n:], player[train_n:])
        yield (
            {
                "codec": {
                    f.name: getattr(cfg, f.name)
                    for f in dataclasses.fields(cfg)
                    if f.name != "latent_scale"
                },
                "steps": steps,
                "batch": batch,
                "train_min": round(train_s / 60, 2),
                "held_out_psnr_db": round(psnr_db, 2),
                "parameters": sum(p.numel() for p in codec.parameters()),
                "decode_ms_per_frame": round(1000 * statistics.median(times) / n, 3),
                **row,
            }
        )


def _moving_player(codec: Codec, frames: np.ndarray, player: np.ndarray) -> dict[str, Any]:
    """Round trip of up to 32 frames per clip: the moving player's share within 2 px, and its
    mean signed error along the motion per position inside a latent frame."""
    k = codec.cfg.temporal
    n = min(32, frames.shape[1]) // k * k
    errors, alongs, phases = [], [], []
    for clip, pos in zip(frames[:, :n], player[:, :n], strict=True):
        rec = codec.decode(codec.encode(torch.from_numpy(clip[None])))[0].numpy()
        moving = np.any(pos[1:] != pos[:-1], axis=1)
        error, along = player_errors(rec[1:][moving], pos[1:][moving], pos[:-1][moving])
        errors.append(error)
        alongs.append(along)
        phases.append((np.arange(1, n) % k)[moving])
    error, along, phase = (np.concatenate(x) for x in (errors, alongs, phases))
    by_phase = [along[(phase == j) & ~np.isnan(along)] for j in range(k)]
    return {
        "player_moving_within_2px": round(float(np.mean(error <= 2.0)), 4) if len(error) else None,
        "player_along_px_by_phase": [
            round(float(a.mean()), 3) if len(a) else None for a in by_phase
        ],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="chunkworld diagnose", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("salience", help="share of sprite tokens the loss weights, per weather")
    s.add_argument("--data", required=True, help="dataset directory (chunkworld data)")
    s.add_argument("--latents", required=True, help="latents.npy a training run wrote for it")
    s.add_argument("--clips", type=int, default=50, help="clips read, spread evenly over the data")
    s.add_argument(
        "--share",
        type=float,
        default=0.1,
        help="share of a frame's tokens weighted as standing out, and as moved (salience_weight)",
    )
    c = sub.add_parser("codec", help="held-out PSNR of fresh codecs trained briefly, per setting")
    c.add_argument("--data", required=True, help="dataset directory (chunkworld data)")
    c.add_argument(
        "--codec",
        action="append",
        default=None,
        metavar="KEY=VALUE[,...]",
        help="a codec setting to try (repeatable; '' is the small preset's codec, tried when "
        "none is given), e.g. latent_channels=64 or patch=2,widths=64/128/128",
    )
    c.add_argument("--steps", type=int, default=800, help="training steps of each codec")
    c.add_argument("--batch", type=int, default=16, help="latent frames per step")
    f = sub.add_parser(
        "following", help="where action following fails: the player's error, broken down"
    )
    f.add_argument(
        "--model", default="default", help="checkpoint directory (default: the shipped model)"
    )
    f.add_argument("--episodes", type=int, default=32, help="held-out episodes rolled out")
    f.add_argument("--horizon", type=int, default=6, help="chunks rolled out per episode")
    f.add_argument("--seed", type=int, default=1_000_000, help="first held-out seed")
    f.add_argument(
        "--codec-only", action="store_true", help="score the codec's round trip of the truth"
    )
    f.add_argument(
        "--one-step",
        action="store_true",
        help="generate every chunk from the true chunks before it: the error one tick ahead",
    )
    f.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="the sampler's, as chunkworld eval (default auto: bf16 autocast where native)",
    )
    f.add_argument(
        "--data",
        help="score the first --episodes clips of this dataset (chunkworld data generate) "
        "instead of held-out episodes: windows the model trained on",
    )
    f.add_argument(
        "--unseen",
        action="store_true",
        help="with --data: the clips its generator would write next, which it does not hold",
    )
    f.add_argument(
        "--prior-level",
        type=float,
        default=None,
        help="level unprompted chunks start from, the model's dynamics prior's guess noised to "
        "it (chunkworld train-prior); 0: pure noise (default: the model's)",
    )
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    d = sub.add_parser(
        "dynamics", help="can the player be moved in the codec's latents? a small conv probe"
    )
    d.add_argument("--model", default="default", help="checkpoint whose codec is probed")
    d.add_argument("--data", required=True, help="dataset directory (chunkworld data generate)")
    d.add_argument(
        "--latents",
        help="latents.npy a training run wrote for this data and encoder (else encoded)",
    )
    d.add_argument("--steps", type=int, default=6000, help="probe training steps")
    d.add_argument("--width", type=int, default=128, help="the probe's channels")
    d.add_argument("--blocks", type=int, default=4, help="the probe's residual blocks")
    d.add_argument("--held-out", type=int, default=50, help="last clips, never trained on")
    d.add_argument("--seed", type=int, default=0, help="of the probe's weights, batches and noise")
    d.add_argument(
        "--form",
        choices=("residual", "direct", "velocity", "x0"),
        default="residual",
        help="what the probe outputs: residual, frame t's change from t-1; direct, frame t; "
        "velocity, given a frame of noise, the flow-matching velocity (as the denoiser does); "
        "x0, given the noise, frame t",
    )
    d.add_argument("--frames", type=int, default=2000, help="held-out latent frames scored")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if a.what == "salience":
        print(json.dumps(salience_coverage(a.data, a.latents, a.clips, a.share), indent=1))
        return
    warn_if_busy(torch.get_num_threads())
    if a.what == "dynamics":
        from world.eval.probe import probe_dynamics

        try:
            report = probe_dynamics(
                a.model,
                a.data,
                a.latents,
                a.steps,
                a.width,
                a.blocks,
                held_out=a.held_out,
                frames=a.frames,
                progress=not a.quiet,
                form=a.form,
                seed=a.seed,
            )
        except (ValueError, FileNotFoundError) as e:  # CheckpointError, no dataset at --data
            p.error(str(e))
        print(json.dumps(report, indent=1))
        return
    if a.what == "following":
        from world.eval.following import following_report

        if a.codec_only and a.one_step:
            p.error("give one of --codec-only and --one-step, not both")
        mode = "codec round trip" if a.codec_only else "one step" if a.one_step else "rollout"
        try:
            report = following_report(
                a.model,
                a.episodes,
                a.horizon,
                a.seed,
                mode,
                not a.quiet,
                a.precision,
                data=a.data,
                unseen=a.unseen,
                prior_level=a.prior_level,
            )
        except (ValueError, FileNotFoundError) as e:  # CheckpointError, no dataset at --data
            p.error(str(e))
        print(json.dumps(report, indent=1))
        return
    try:
        settings = [codec_setting(t) for t in (a.codec or [""])]
    except ValueError as e:
        p.error(str(e))
    for row in codec_capacity(a.data, settings, a.steps, a.batch):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
