"""Ground-truth episodes of the built-in game, the truth every evaluation scores against.

``true_episode`` plays a held-out seed (the game, play-like actions, prompts at chosen chunks);
``play_episode`` steps a game through any script of chunks (actions and a caption each), such
as a dataset's clip replayed by ``world.train.datagen.Replayer``. Either gives an ``Episode``: the
frames, the actions, the captions, the true player per frame and the game's state per chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from world.games.actions import play_like_actions
from world.games.arcade import Game, GameConfig

__all__ = ["Episode", "play_episode", "true_episode"]


@dataclass
class Episode:
    frames: np.ndarray  # (n * F, H, W, 3)
    actions: np.ndarray  # (n * F,)
    captions: list[str]  # (n,)
    player: np.ndarray  # (n * F, 2) true player centre
    states: list[Any]  # GameState after each chunk


def true_episode(
    seed: int, chunks: int, chunk_frames: int, size: int, prompts: dict[int, str] | None = None
) -> Episode:
    """A held-out episode: the game from ``seed``, play-like actions, ``prompts`` by chunk."""
    game = Game(GameConfig.for_size(size))
    game.reset(seed)
    actions = play_like_actions(np.random.default_rng(seed + 17), chunks * chunk_frames)

    def script() -> Iterator[tuple[np.ndarray, str]]:
        for c in range(chunks):
            prompt = (prompts or {}).get(c)
            if prompt is not None:
                game.apply_prompt(prompt)
            caption = game.describe() if prompt is None else prompt
            yield actions[c * chunk_frames : (c + 1) * chunk_frames], caption

    return play_episode(game, script(), chunks)


def play_episode(game: Game, script: Iterable[tuple[np.ndarray, str]], chunks: int) -> Episode:
    """Step ``game`` through the first ``chunks`` chunks of ``script`` (each chunk's actions and
    caption, drawn after the chunk before was played) and record the episode."""
    frames: list[np.ndarray] = []
    actions: list[int] = []
    player: list[tuple[float, float]] = []
    captions: list[str] = []
    states: list[Any] = []
    for acts, caption in script:
        if len(captions) == chunks:
            break
        captions.append(caption)
        for a in acts:
            frames.append(game.step(int(a)))
            actions.append(int(a))
            s = game.state()
            player.append((s.player_x, s.player_y))
        states.append(game.state())
    if len(captions) < chunks:
        raise ValueError(f"the script holds {len(captions)} chunks, fewer than the {chunks} asked")
    return Episode(
        np.stack(frames), np.asarray(actions, np.int64), captions, np.asarray(player), states
    )
