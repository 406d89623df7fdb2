"""The built-in game's data generator and the ``chunkworld data`` command.

Clip ``i`` of a dataset with seed base ``s`` is a fresh :class:`world.games.arcade.Game` whose seeds come
from ``numpy.random.SeedSequence([s, i])``. Training data uses ``TRAIN_SEED`` (0), evaluation
data ``EVAL_SEED`` (1_000_000): with fewer than a million clips the two never share a game.
Clips are written in the one format of :mod:`world.train.data`.

    chunkworld data generate --out data/train --clips 2000 --frames 32   # or python -m world.train.datagen
    chunkworld data info data/train
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from world.games.actions import ACTIONS, play_like_actions, training_actions
from world.games.arcade import Game, GameConfig, state_fields
from world.games.captions import sample_chunk_caption
from world.train.data import Dataset, DatasetMeta, DatasetWriter, clip_files

# An action policy: (generator, frames) -> that many action ids, deterministic for the generator.
Policy = Callable[[np.random.Generator, int], np.ndarray]
POLICIES: dict[str, Policy] = {p.__name__: p for p in (play_like_actions, training_actions)}

TRAIN_SEED = 0
EVAL_SEED = 1_000_000


def clip_seeds(seed: int, index: int) -> tuple[int, int, int]:
    """Seeds of clip ``index`` of a dataset with seed base ``seed``: (game, actions, captions)."""
    g, a, c = np.random.SeedSequence([seed, index]).generate_state(3)
    return int(g), int(a), int(c)


def _clip_script(
    game: Game,
    index: int,
    clip_frames: int,
    chunk_frames: int,
    seed: int,
    event_prob: float,
    policy: Policy = play_like_actions,
) -> Iterator[tuple[np.ndarray, str, dict[str, Any] | None]]:
    """Play clip ``index``'s script on ``game``: reset it from the clip's seed, then for each
    chunk apply its prompt and yield ``(the chunk's actions, its caption, the event record or
    None)``. The caller steps the chunk's frames before it asks for the next chunk, since a
    chunk's caption is drawn from the scene the frames before it left."""
    game_seed, act_seed, cap_seed = clip_seeds(seed, index)
    game.reset(game_seed)
    actions = policy(np.random.default_rng(act_seed), clip_frames)
    cap_rng = np.random.default_rng(cap_seed)
    for c in range(clip_frames // chunk_frames):
        event = None
        if c == 0:
            caption = game.describe()
        else:
            caption, is_event = sample_chunk_caption(
                cap_rng, game.state(), event_prob, game.config.max_balls
            )
            if is_event:
                changed = game.apply_prompt(caption)
                event = {
                    "frame": c * chunk_frames,
                    "chunk": c,
                    "prompt": caption,
                    "events": changed,
                }
        yield actions[c * chunk_frames : (c + 1) * chunk_frames], caption, event


def generate_clip(
    game: Game,
    index: int,
    clip_frames: int,
    chunk_frames: int = 4,
    seed: int = 0,
    event_prob: float = 0.12,
    policy: Policy = play_like_actions,
) -> dict[str, Any]:
    """One clip of generated data, as the keyword arguments of :meth:`DatasetWriter.append`.

    Chunk 0 is captioned with the scene description; every later chunk, with probability
    ``event_prob``, gets an event prompt that is applied to the game before its first frame,
    otherwise the (current) scene description.
    """
    s = game.config.size
    frames = np.empty((clip_frames, s, s, 3), dtype=np.uint8)
    state = np.empty((clip_frames, len(state_fields(game.config.max_balls))), dtype=np.float32)
    actions = np.empty(clip_frames, dtype=np.int64)
    captions: list[str] = []
    events: list[dict[str, Any]] = []
    script = _clip_script(game, index, clip_frames, chunk_frames, seed, event_prob, policy)
    for c, (acts, caption, event) in enumerate(script):
        captions.append(caption)
        if event is not None:
            events.append(event)
        for t, a in enumerate(acts, start=c * chunk_frames):
            actions[t] = a
            frames[t] = game.step(int(a))
            state[t] = game.state_vector()
    info = {"seed_base": seed, "index": index, "game_seed": clip_seeds(seed, index)[0]}
    return dict(
        frames=frames, actions=actions, captions=captions, state=state, events=events, info=info
    )


class Replayer:
    """Clips of a dataset the built-in game wrote, played again with the player moved.

    ``frames_after(row, chunk, player, chunks)``: the frames of the ``chunks`` chunks after
    chunk ``chunk`` of the dataset's clip ``row``, in the world where the player stood at
    ``player`` at the end of chunk ``chunk``. The actions, prompts, balls and weather are the
    clip's; only the player and the bolts it fires differ. With the player where the clip has
    it, the frames are the clip's own, pixel for pixel.

    Deep self-rollout uses it (``chunkworld train --rollout-resim``): a generated history that
    drew the player 1 px off gets targets that continue from where it drew it, not a player
    that jumps back to the clip's place, which no history shows and a model can only learn as a
    blur. Only a dataset of :func:`generate_dataset` can be replayed: its ``meta.json`` holds
    the seeds, the event rate and the game's config, and its clip files are named by index.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        ds = Dataset(path)
        gen = ds.meta.generator
        if (
            gen.get("name") != "world.games.arcade.Game"
            or "seed_base" not in gen
            or ds.meta.clip_frames is None
        ):
            raise ValueError(
                f"{path}: not written by the built-in game's generator (meta.json generator "
                f"{gen.get('name')!r}), so its clips cannot be replayed; train without "
                "--rollout-resim"
            )
        cfg: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in gen["config"].items()
        }
        self.game = Game(GameConfig(**cfg))
        self.seed, self.event_prob = int(gen["seed_base"]), float(gen["event_prob"])
        self.policy = POLICIES[gen.get("policy", "play_like_actions")]
        self.chunk_frames, self.clip_frames = ds.meta.chunk_frames, int(ds.meta.clip_frames)
        self.index = [int(i) for i in ds.ids]  # clip files are named by their index

    def script(self, index: int) -> Iterator[tuple[np.ndarray, str]]:
        """Clip ``index`` of this dataset's generator (held or not: the index past its last is
        the clip it would write next), played on ``self.game``: reset, then each chunk's actions
        and caption, its prompt applied, as the caller steps the chunk before."""
        script = _clip_script(
            self.game,
            index,
            self.clip_frames,
            self.chunk_frames,
            self.seed,
            self.event_prob,
            self.policy,
        )
        return ((acts, caption) for acts, caption, _ in script)

    def frames_after(
        self, row: int, chunk: int, player: tuple[float, float], chunks: int
    ) -> np.ndarray:
        """(chunks * chunk_frames, H, W, 3) uint8; see the class docstring."""
        f = self.chunk_frames
        if not 0 <= chunk < chunk + chunks <= self.clip_frames // f - 1:
            raise ValueError(
                f"chunks {chunk + 1}..{chunk + chunks} are not in a clip of "
                f"{self.clip_frames // f} chunks"
            )
        out = []
        for c, (acts, _) in enumerate(self.script(self.index[row])):
            if c == chunk + 1:
                self.game.place_player(*player)
            for a in acts:
                frame = self.game.step(int(a))
                if c > chunk:
                    out.append(frame)
            if c == chunk + chunks:
                break
        return np.stack(out)


def generate_dataset(
    path: str | os.PathLike[str],
    n_clips: int,
    clip_frames: int,
    chunk_frames: int = 4,
    seed: int = TRAIN_SEED,
    size: int = 64,
    progress: bool = True,
    event_prob: float = 0.12,
    fps: float = 15.0,
    config: GameConfig | None = None,
    policy: Policy = play_like_actions,
) -> Dataset:
    """Generate ``n_clips`` clips of the built-in game into a new dataset directory.

    Use ``seed=TRAIN_SEED`` (0) for training data and ``seed=EVAL_SEED`` (1_000_000) for held-out
    evaluation data. ``config`` overrides ``GameConfig.for_size(size)``.
    """
    from tqdm import tqdm

    path = Path(path)
    if n_clips < 0:
        raise ValueError(f"n_clips must be >= 0, got {n_clips}")
    if clip_frames <= 0 or clip_frames % chunk_frames:
        raise ValueError(
            f"clip_frames must be a positive multiple of chunk_frames={chunk_frames}, got {clip_frames}"
        )
    if clip_files(path) or (path / "meta.json").exists():
        raise FileExistsError(f"{path} already holds a dataset: choose a new --out or delete it")
    cfg = config or GameConfig.for_size(size)
    game = Game(cfg)
    meta = DatasetMeta(
        frame_size=(cfg.size, cfg.size),
        chunk_frames=chunk_frames,
        fps=fps,
        actions=ACTIONS,
        state_fields=tuple(state_fields(cfg.max_balls)),
        clip_frames=clip_frames,
        generator={
            "name": "world.games.arcade.Game",
            "seed_base": seed,
            "seeds": "clip i: numpy.random.SeedSequence([seed_base, i]).generate_state(3) "
            "-> (game, actions, captions)",
            "event_prob": event_prob,
            "policy": policy.__name__,
            "config": dataclasses.asdict(cfg),
        },
    )
    writer = DatasetWriter(path, meta)
    for i in tqdm(range(n_clips), desc=f"generate {path}", unit="clip", disable=not progress):
        writer.append(**generate_clip(game, i, clip_frames, chunk_frames, seed, event_prob, policy))
    return Dataset(path)


def summarize(ds: Dataset) -> str:
    """A few lines about a dataset: clips, frames, size, actions and events."""
    m = ds.meta
    n_frames = 0
    action_counts = np.zeros(len(m.actions), dtype=np.int64)
    n_events = 0
    for clip in ds:
        n_frames += len(clip)
        action_counts += np.bincount(clip.actions, minlength=len(m.actions))
        n_events += len(clip.events)
    size = sum(p.stat().st_size for p in clip_files(ds.path))
    share = ", ".join(
        f"{name} {c / max(n_frames, 1):.0%}"
        for name, c in zip(m.actions, action_counts, strict=True)
    )
    return (
        f"{ds.path}: {len(ds)} clips, {n_frames} frames of {m.frame_size[0]}x{m.frame_size[1]}, "
        f"{m.chunk_frames} frames per chunk, {n_events} caption events, {size / 1e6:.1f} MB\n"
        f"actions: {share}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``chunkworld data generate --out data/train --clips 2000 --frames 32`` or ``chunkworld data
    info data/train`` (``python -m world.train.datagen`` is the same)."""
    parser = argparse.ArgumentParser(prog="chunkworld data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate clips of the built-in game")
    gen.add_argument("--out", required=True, help="new dataset directory")
    gen.add_argument("--clips", type=int, default=2000, help="number of clips (default 2000)")
    gen.add_argument("--frames", type=int, default=32, help="frames per clip (default 32)")
    gen.add_argument("--chunk", type=int, default=4, help="frames per chunk (default 4)")
    gen.add_argument(
        "--size", type=int, default=64, help="frame side in pixels, 32..256 (default 64)"
    )
    group = gen.add_mutually_exclusive_group()
    group.add_argument(
        "--seed", type=int, default=TRAIN_SEED, help="seed base (default 0: training)"
    )
    group.add_argument("--eval", action="store_true", help=f"held-out seed base {EVAL_SEED}")
    gen.add_argument("--event-prob", type=float, default=0.12, help="chance of an event per chunk")
    gen.add_argument("--fps", type=float, default=15.0, help="playback rate stored in meta.json")
    gen.add_argument(
        "--policy",
        choices=["play", "training"],
        default="play",
        help="play: play-like key holds; training: play-like with long idles and keys "
        "alternating every frame, as the training recipe generates (default play)",
    )
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    info = sub.add_parser("info", help="summarize a dataset")
    info.add_argument("path")
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            seed = EVAL_SEED if args.eval else args.seed
            start = time.perf_counter()
            ds = generate_dataset(
                args.out,
                args.clips,
                args.frames,
                args.chunk,
                seed,
                args.size,
                progress=not args.quiet,
                event_prob=args.event_prob,
                fps=args.fps,
                policy={"play": play_like_actions, "training": training_actions}[args.policy],
            )
            elapsed = time.perf_counter() - start
            print(summarize(ds))
            print(
                f"seed base {seed}; {elapsed:.1f} s, "
                f"{args.clips * args.frames / max(elapsed, 1e-9):.0f} frames/s"
            )
        else:
            print(summarize(Dataset(args.path)))
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
