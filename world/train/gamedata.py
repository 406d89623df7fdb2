"""Training data from any game of the protocol (:mod:`world.games.protocol`), in the one dataset
format of :mod:`world.train.data`.

Clip ``i`` with seed base ``s`` resets the game from ``numpy.random.SeedSequence([s, i])`` (as
:mod:`world.train.datagen` does for the arcade) and plays it:

- actions: the game's ``policy(rng)`` once a tick when it has one, else
  :func:`world.games.actions.held_key_actions` over its ``actions``;
- captions: ``describe()`` at each chunk's start when the game has it, else ``""``;
- prompts: when the game has ``apply_prompt`` and ``prompts``, each chunk after the first gets,
  with probability ``event_prob``, a phrasing of a random event kind applied before its first
  frame; the phrasing is the chunk's caption and the events it caused are recorded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from world.games import load_game
from world.games.actions import held_key_actions
from world.games.arcade import Game as Arcade
from world.games.arcade import GameConfig
from world.games.protocol import GameError, check_frame, validate_game
from world.train.data import Dataset, DatasetMeta, DatasetWriter, clip_files
from world.train.datagen import clip_seeds


def sized_game(name: str, size: int) -> Any:
    """The game ``name`` (:func:`world.games.load_game`); the arcade, which draws at any size,
    drawn ``size`` pixels a side."""
    game = load_game(name)
    return Arcade(GameConfig.for_size(size)) if isinstance(game, Arcade) else game


def game_clip(
    game: Any, index: int, clip_frames: int, chunk_frames: int, seed: int, event_prob: float
) -> dict[str, Any]:
    """Clip ``index`` of the game, as the keyword arguments of :meth:`DatasetWriter.append`."""
    actions = list(game.actions)
    game_seed, act_seed, cap_seed = clip_seeds(seed, index)
    first = check_frame(game.reset(game_seed), f"reset(seed={game_seed})")
    size = first.shape[:2]
    rng = np.random.default_rng(act_seed)
    policy = getattr(game, "policy", None)
    if callable(policy):
        ids = np.zeros(clip_frames, dtype=np.int64)
    else:
        ids = held_key_actions(rng, clip_frames, len(actions))
    describe = getattr(game, "describe", None)
    prompts = (
        getattr(game, "prompts", None) if callable(getattr(game, "apply_prompt", None)) else None
    )
    cap_rng = np.random.default_rng(cap_seed)
    frames = np.empty((clip_frames, *size, 3), dtype=np.uint8)
    captions: list[str] = []
    events: list[dict[str, Any]] = []
    for c in range(clip_frames // chunk_frames):
        caption = str(describe()) if callable(describe) else ""
        if c and prompts and cap_rng.random() < event_prob:
            kinds = sorted(prompts)
            phrasings = prompts[kinds[int(cap_rng.integers(len(kinds)))]]
            caption = phrasings[int(cap_rng.integers(len(phrasings)))]
            caused = list(game.apply_prompt(caption))
            events.append(
                {"frame": c * chunk_frames, "chunk": c, "prompt": caption, "events": caused}
            )
        captions.append(caption)
        for t in range(c * chunk_frames, (c + 1) * chunk_frames):
            if callable(policy):
                name = policy(rng)
                if name not in actions:
                    raise GameError(
                        f"policy returned {name!r} at tick {t + 1} (seed {game_seed}), not one "
                        f"of {actions}"
                    )
                ids[t] = actions.index(name)
            where = f"step({actions[ids[t]]!r}) at tick {t + 1} after reset(seed={game_seed})"
            frames[t] = check_frame(game.step(actions[ids[t]]), where, size)
    info = {"seed_base": seed, "index": index, "game_seed": game_seed}
    return dict(frames=frames, actions=ids, captions=captions, events=events, info=info)


def generate_game_dataset(
    game: Any,
    path: str | os.PathLike[str],
    n_clips: int,
    clip_frames: int,
    chunk_frames: int,
    seed: int = 0,
    event_prob: float = 0.12,
    fps: float = 15.0,
) -> Dataset:
    """Validate ``game``, then write ``n_clips`` clips of it into a new dataset at ``path``.

    Raises:
        GameError: the game breaks the protocol (before anything is written).
        FileExistsError: ``path`` already holds a dataset.
    """
    path = Path(path)
    if clip_frames <= 0 or clip_frames % chunk_frames:
        raise ValueError(
            f"clip_frames must be a positive multiple of chunk_frames={chunk_frames}, "
            f"got {clip_frames}"
        )
    if clip_files(path) or (path / "meta.json").exists():
        raise FileExistsError(f"{path} already holds a dataset: choose a new --out or delete it")
    summary = validate_game(game)
    cls = type(game)
    meta = DatasetMeta(
        frame_size=summary["frame_size"],
        chunk_frames=chunk_frames,
        fps=fps,
        actions=tuple(summary["actions"]),
        clip_frames=clip_frames,
        generator={
            "name": f"{cls.__module__}.{cls.__qualname__}",
            "seed_base": seed,
            "event_prob": event_prob,
            "policy": "game.policy" if "policy" in summary["optional"] else "held_key_actions",
            "optional": summary["optional"],
        },
    )
    writer = DatasetWriter(path, meta)
    for i in range(n_clips):
        writer.append(**game_clip(game, i, clip_frames, chunk_frames, seed, event_prob))
    return Dataset(path)
