"""Where action following fails: the generated player's error, broken down.

    chunkworld following --model default
    chunkworld following --model default --codec-only
    chunkworld following --model default --one-step
    chunkworld following --model default --one-step --data data/long3

``chunkworld eval`` gives one figure, the share of generated frames whose player lies within
2 px of the truth. This rolls the model out the same way (true 2-chunk video start, the true
game's actions and captions, the checkpoint's play setting) and splits that share by chunks
ahead, by frame within the chunk and within the latent frame, by the action held, by motion
(the true player moved this frame or not), by scene (night, weather), by nearness to a wall and
by how long the key has been held ("new": pressed this frame or the one before) and by whether
the player's sprite just crossed into other latent cells (the codec's ``spatial`` grid: the
tokens that draw it changed this frame, "crossing", or not, "steady"). It also gives
the signed error along the true motion: negative means the generated player lags, positive that
it runs ahead.

Every group also counts its ``strays``: frames where the player leaves the tolerance (within it
in the previous frame, beyond it or gone in this one). A generated world continues from its own
frames, so an offset, once made, is carried until a wall stops the player; ``strays`` shows
where offsets are made, ``within_tol`` where they are carried. Strays spread evenly over the
chunks ahead mean a one-step error; strays rising with depth mean the model reads its own
history worse than the truth.

With ``--codec-only`` the frames scored are the codec's round trip of the true frames: what the
codec alone costs, the floor under every rollout.

With ``--one-step`` every chunk is generated from the true chunks before it (teacher forced), all
of an episode's chunks in one batch: the model's precision one tick ahead, apart from what it
carries from its own earlier frames. An offset in a rollout is made there and kept, so this
error, added up over the ticks, is what the rollout's figure loses; and since every chunk starts
from the truth, no early offset carried to the end of an episode decides its figure. Its
``one_px_off`` (frames with the player 1 px or more off, or gone) and ``by.frame`` (the error
growing over the frames of a chunk, the further from the history it is) are the figures to
read.

With ``--data DIR`` the episodes are DIR's clips (a dataset of ``chunkworld data generate``,
replayed from its seeds), the windows a model trained on; with ``--unseen`` too, the clips its
generator would write next. Equal figures mean the network underfits (it places the player no
better where it has trained), the unseen ones higher that it overfits.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from world.core.checkpoint import load_checkpoint
from world.core.cpus import PRECISIONS, warn_if_busy
from world.core.sampler import PipelinedSampler
from world.eval.detect import player_errors
from world.eval.episodes import Episode, play_episode, true_episode
from world.eval.evaluate import Roller
from world.games.actions import ACTIONS
from world.games.arcade import GameConfig
from world.train.datagen import Replayer
from world.train.rollout import generate_after

__all__ = ["MODES", "FrameError", "breakdown", "frame_errors", "following_report"]


@dataclass(frozen=True)
class FrameError:
    """The player in one generated frame against the truth."""

    chunk: int  # chunks ahead of the true start, from 1
    frame: int  # frame within its chunk
    phase: int  # frame within its latent frame (the codec packs ``temporal`` frames in one)
    action: str  # the action held in this frame
    scene: str  # "day" or "night", with "+rain" or "+snow"
    moving: bool  # the true player moved in this frame
    near_wall: bool  # the true player's centre is within one player side of its bounds
    error: float | None  # distance (px) of the detected centre from the true one; None: not found
    along: float | None  # signed error along the true motion (px); None when still or not found
    held: int = 1  # frames the action has been held, this one included (1: pressed this frame)
    # the previous frame's error (None: no player there); the first rolled-out frame follows a
    # true start, so its predecessor is 0.0
    before: float | None = 0.0
    # the true sprite covers other latent cells (the codec's ``spatial`` grid) than the frame before
    crossing: bool = False


def frame_errors(
    generated: np.ndarray,
    ep: Episode,
    first: int,
    chunk_frames: int,
    temporal: int,
    *,
    cell: int,
) -> list[FrameError]:
    """Score ``generated`` (T, H, W, 3), the frames standing for ``ep.frames[first:first + T]``.

    ``first`` is a multiple of ``chunk_frames`` (rollouts start at a chunk boundary) and
    ``chunk_frames`` a multiple of ``temporal``; ``cell`` is the side in pixels of one latent
    cell (the codec's ``spatial``).
    """
    if first % chunk_frames or chunk_frames % temporal:
        raise ValueError(
            f"first ({first}) must be a multiple of chunk_frames ({chunk_frames}), and "
            f"chunk_frames of temporal ({temporal})"
        )
    n = len(generated)
    if first < 1 or first + n > len(ep.frames):
        raise ValueError(
            f"frames {first}..{first + n} do not fit an episode of "
            f"{len(ep.frames)} frames with one true frame before them"
        )
    game = GameConfig.for_size(generated.shape[1])
    lo, hi = game.player_bounds()
    true = ep.player[first : first + n].astype(np.float64)
    before = ep.player[first - 1 : first + n - 1]
    error, along = player_errors(generated, true, before)
    cells = _cells(true, game.player_size, cell)
    cells_before = _cells(before, game.player_size, cell)
    out = []
    for t in range(n):
        i = first + t
        held = 1
        while held <= i and ep.actions[i - held] == ep.actions[i]:
            held += 1
        state = ep.states[i // chunk_frames]
        scene = ("night" if state.night else "day") + (
            "" if state.weather == "clear" else f"+{state.weather}"
        )
        out.append(
            FrameError(
                chunk=t // chunk_frames + 1,
                frame=t % chunk_frames,
                phase=t % temporal,
                action=ACTIONS[int(ep.actions[i])],
                scene=scene,
                moving=bool(np.any(true[t] != before[t])),
                near_wall=bool(min(true[t].min() - lo, hi - true[t].max()) < game.player_size),
                error=None if np.isinf(error[t]) else float(error[t]),
                along=None if np.isnan(along[t]) else float(along[t]),
                held=held,
                before=0.0 if t == 0 else None if np.isinf(error[t - 1]) else float(error[t - 1]),
                crossing=bool(np.any(cells[t] != cells_before[t])),
            )
        )
    return out


def _cells(centres: np.ndarray, size: int, cell: int) -> np.ndarray:
    """(T, 2) sprite centres -> (T, 4): the first and last latent cell its pixels cover, per axis.

    A 6-px sprite centred at x = 8 covers pixels 5..10, so cells 0..1 of an 8-px grid; at x = 12,
    pixels 9..14, cell 1 only.
    """
    c = np.asarray(centres, dtype=np.int64)
    half = size // 2
    return np.concatenate([(c - half) // cell, (c + half - 1) // cell], axis=1)


def _summary(rows: Sequence[FrameError], tol: float) -> dict[str, Any]:
    errs = np.asarray([np.inf if r.error is None else r.error for r in rows])
    found = errs[np.isfinite(errs)]
    # the player strays here: within ``tol`` in the previous frame, beyond it (or gone) in this one
    strays = sum(
        1
        for r, e in zip(rows, errs, strict=True)
        if e > tol and r.before is not None and r.before <= tol
    )
    return {
        "frames": len(rows),
        "within_tol": round(float(np.mean(errs <= tol)), 4),
        "one_px_off": round(float(np.mean(errs >= 1.0)), 4),
        "not_found": int(np.sum(~np.isfinite(errs))),
        "median_px": round(float(np.median(found)), 3) if len(found) else None,
        "strays": strays,
    }


def breakdown(errors: Iterable[FrameError], tol: float = 2.0) -> dict[str, Any]:
    """Share of frames within ``tol`` px (and the median error) overall and per group, and the
    mean signed error along the motion per phase of the latent frame and per chunk ahead."""
    rows = list(errors)
    if not rows:
        raise ValueError("no frames to break down")
    keys = {
        "chunk": lambda r: str(r.chunk),
        "frame": lambda r: str(r.frame),
        "phase": lambda r: str(r.phase),
        "action": lambda r: r.action,
        "motion": lambda r: "moving" if r.moving else "still",
        "scene": lambda r: r.scene,
        "wall": lambda r: "near" if r.near_wall else "open",
        "press": lambda r: "new" if r.held <= 2 else "held",
        "cell": lambda r: "crossing" if r.crossing else "steady",
    }
    by: dict[str, dict[str, Any]] = {}
    for name, key in keys.items():
        groups: dict[str, list[FrameError]] = defaultdict(list)
        for r in rows:
            groups[key(r)].append(r)
        order = sorted(groups, key=lambda g: (len(g), g))  # "2" before "10"
        by[name] = {g: _summary(groups[g], tol) for g in order}
    along: dict[str, dict[str, float]] = {}
    for name in ("phase", "chunk"):
        sums: dict[str, list[float]] = defaultdict(list)
        for r in rows:
            if r.along is not None:
                sums[keys[name](r)].append(r.along)
        order = sorted(sums, key=lambda g: (len(g), g))
        along[name] = {g: round(float(np.mean(sums[g])), 3) for g in order}
    return {"tol_px": tol, **_summary(rows, tol), "by": by, "along_motion_px": along}


MODES = ("rollout", "one step", "codec round trip")


@torch.no_grad()
def following_report(
    model_dir: str | Path,
    episodes: int = 32,
    horizon: int = 6,
    seed: int = 1_000_000,
    mode: str = "rollout",
    progress: bool = True,
    precision: str = "auto",
    data: str | Path | None = None,
    unseen: bool = False,
    prior_level: float | None = None,
) -> dict[str, Any]:
    """Score ``episodes`` held-out episodes of ``horizon`` chunks after a true start, as
    ``chunkworld eval`` does, and :func:`breakdown` the player's error. ``mode`` (one of
    :data:`MODES`): roll the model out, generate each chunk from the true ones before it, or
    round-trip the true frames through the codec.

    With ``data`` (a dataset of ``chunkworld data generate``) the episodes are instead the
    first ``episodes`` of its clips, their first chunks, or with ``unseen`` the clips its
    generator would write after them: the same kind of windows, trained on or new, so that the
    two figures tell underfitting (both high) from overfitting (the unseen ones higher).
    ``prior_level`` overrides the checkpoint's (``world/core/prior.py``; 0: no prior)."""
    if episodes < 1 or horizon < 1:
        raise ValueError(f"episodes and horizon must be >= 1, got {episodes} and {horizon}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    model, _ = load_checkpoint(model_dir)
    cfg = model.cfg
    f, k, size = cfg.chunk_frames, cfg.history_chunks, cfg.codec.frame_size
    cell = cfg.codec.spatial
    source = _episodes(data, unseen, episodes, k, horizon, f, size)
    sampler = PipelinedSampler(model, precision=precision, prior_level=prior_level)  # as eval
    roller = Roller(model, sampler)
    rows: list[FrameError] = []
    for e in tqdm(range(episodes), desc="following", disable=not progress):
        ep = source(e) if source else true_episode(seed + e, k + horizon, f, size)
        if mode == "one step":
            for c, chunk in enumerate(_one_step(sampler, ep, horizon, seed=e)):
                first = (k + c) * f
                for r in frame_errors(chunk, ep, first, f, cfg.codec.temporal, cell=cell):
                    rows.append(replace(r, chunk=c + 1))
            continue
        if mode == "codec round trip":
            true = torch.from_numpy(ep.frames[k * f :])[None]
            gen = sampler.decode(model.codec.encode(true))[0].numpy()
        else:
            state = roller.start(ep, seed=e)
            acts = ep.actions[k * f :].reshape(horizon, f)
            frames, _ = roller.run(state, acts, ep.captions[k:])
            gen = frames.reshape(-1, *frames.shape[2:])
        rows += frame_errors(gen, ep, k * f, f, cfg.codec.temporal, cell=cell)
    return {
        "model": str(model_dir),
        "mode": mode,
        "episodes": episodes,
        "horizon_chunks": horizon,
        "prior_level": sampler.prior_level,
        **(
            {"data": str(data), "clips": "unseen" if unseen else "held"}
            if data is not None
            else {"seed": seed}
        ),
        **breakdown(rows),
    }


def _episodes(
    data: str | Path | None,
    unseen: bool,
    episodes: int,
    history: int,
    horizon: int,
    chunk_frames: int,
    size: int,
) -> Callable[[int], Episode] | None:
    """Episode ``e`` of a dataset's clips (held, or the unseen ones after them); None: no data."""
    if data is None:
        if unseen:
            raise ValueError("unseen clips are those a dataset's generator writes next: give data")
        return None
    replayer = Replayer(data)
    have = replayer.clip_frames // replayer.chunk_frames
    if replayer.game.config.size != size or replayer.chunk_frames != chunk_frames:
        raise ValueError(
            f"{data}: {replayer.game.config.size}-px frames in chunks of "
            f"{replayer.chunk_frames}, the model {size} px and {chunk_frames}: give the data "
            "the model was trained on"
        )
    if history + horizon > have:
        raise ValueError(
            f"{data}: its clips hold {have} chunks, fewer than the model's {history} of history "
            f"and a horizon of {horizon}: give a horizon of at most {have - history}"
        )
    if unseen:
        first = max(replayer.index) + 1
        indices = list(range(first, first + episodes))
    elif episodes > len(replayer.index):
        raise ValueError(f"{data} holds {len(replayer.index)} clips, fewer than {episodes}")
    else:
        indices = replayer.index[:episodes]
    return lambda e: play_episode(replayer.game, replayer.script(indices[e]), history + horizon)


def _one_step(sampler: PipelinedSampler, ep: Episode, horizon: int, seed: int) -> np.ndarray:
    """(horizon, F, H, W, 3): chunk ``k + c`` of ``ep`` generated after its true chunks
    ``c .. k + c - 1``, one batch for all ``c``, at the play sampler's settings."""
    model = sampler.model
    cfg = model.cfg
    f, k, tl = cfg.chunk_frames, cfg.history_chunks, cfg.latent_frames
    z = model.codec.encode(torch.from_numpy(ep.frames[: (k + horizon) * f])[None])[0]
    z = z.view(k + horizon, tl, *z.shape[1:])
    acts = torch.from_numpy(ep.actions[: (k + horizon) * f].astype(np.int64)).view(-1, f)
    history = torch.stack([z[c : c + k] for c in range(horizon)])
    history_actions = torch.stack([acts[c : c + k] for c in range(horizon)])
    captions: list[list[str | None]] = [[ep.captions[k + c]] for c in range(horizon)]
    gen = generate_after(
        model, history, history_actions, acts[k:, None], captions, seed,
        precision=sampler.precision, prior_level=sampler.prior_level,
    )  # fmt: skip
    return sampler.decode(gen[:, 0]).numpy()


def main(argv: list[str] | None = None) -> None:
    """``chunkworld following``: print :func:`following_report` as JSON."""
    p = argparse.ArgumentParser(
        prog="chunkworld following",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model", default="default", help="checkpoint directory (default: the shipped model)"
    )
    p.add_argument("--episodes", type=int, default=32, help="held-out episodes rolled out")
    p.add_argument("--horizon", type=int, default=6, help="chunks rolled out per episode")
    p.add_argument("--seed", type=int, default=1_000_000, help="first held-out seed")
    p.add_argument(
        "--codec-only", action="store_true", help="score the codec's round trip of the truth"
    )
    p.add_argument(
        "--one-step",
        action="store_true",
        help="generate every chunk from the true chunks before it: the error one tick ahead",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="the sampler's, as chunkworld eval (default auto: bf16 autocast where native)",
    )
    p.add_argument(
        "--data",
        help="score the first --episodes clips of this dataset (chunkworld data generate) "
        "instead of held-out episodes: windows the model trained on",
    )
    p.add_argument(
        "--unseen",
        action="store_true",
        help="with --data: the clips its generator would write next, which it does not hold",
    )
    p.add_argument(
        "--prior-level",
        type=float,
        default=None,
        help="level unprompted chunks start from, the model's dynamics prior's guess noised to "
        "it (chunkworld train-prior); 0: pure noise (default: the model's)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if a.codec_only and a.one_step:
        p.error("give one of --codec-only and --one-step, not both")
    warn_if_busy(torch.get_num_threads())
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


if __name__ == "__main__":
    main()
