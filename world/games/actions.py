"""The action schema of the built-in game, and play-like action scripts for data generation.

One discrete action per frame; the index in :data:`ACTIONS` is the action id used everywhere
(game, datasets, model conditioning, the bridge)::

    0 noop   1 up   2 down   3 left   4 right   5 fire

``play_like_actions`` imitates a person at a keyboard: keys held for a while, pauses, bursts of
fire and now and then fast switching, rather than an independent random key per frame (which
would make the player jitter in place and teach a model nothing about held motion).
"""

from __future__ import annotations

import numpy as np

ACTIONS: tuple[str, ...] = ("noop", "up", "down", "left", "right", "fire")
NOOP, UP, DOWN, LEFT, RIGHT, FIRE = range(len(ACTIONS))
DIRECTIONS: tuple[int, ...] = (UP, DOWN, LEFT, RIGHT)

# (dx, dy) per action id, in pixels per unit of speed; y grows downwards as in image rows.
MOVES: tuple[tuple[int, int], ...] = ((0, 0), (0, -1), (0, 1), (-1, 0), (1, 0), (0, 0))


def action_id(action: str | int | np.integer) -> int:
    """The id of an action given by name (``"left"``, case-insensitive) or by id (``3``).

    Raises ``ValueError`` listing the valid names for anything else.
    """
    if isinstance(action, (int, np.integer)) and not isinstance(action, (bool, np.bool_)):
        if 0 <= action < len(ACTIONS):
            return int(action)
    valid = ", ".join(f"{i}={name}" for i, name in enumerate(ACTIONS))
    if isinstance(action, (bool, np.bool_)):
        raise ValueError(f"action must be a name or an id, got {action!r}; valid: {valid}")
    if isinstance(action, (int, np.integer)):
        if 0 <= int(action) < len(ACTIONS):
            return int(action)
        raise ValueError(f"action id {int(action)} is out of range; valid: {valid}")
    if isinstance(action, str):
        name = action.strip().lower()
        if name in ACTIONS:
            return ACTIONS.index(name)
        raise ValueError(f"unknown action {action!r}; valid: {valid}")
    raise ValueError(f"action must be a name or an id, got {type(action).__name__}; valid: {valid}")


# Segment kinds of a play-like script and their probabilities. With the durations below the
# expected share of frames is about 20% per direction, 11% noop and 9% fire.
_SEGMENTS = (("hold", 0.55), ("pause", 0.12), ("fire", 0.13), ("switch", 0.20))


def play_like_actions(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` action ids (int64) that look like play: a sequence of segments, each one of

    - hold: one direction held for 2..24 frames,
    - pause: noop for 2..12 frames,
    - fire: fire held for 2..8 frames (the game fires every few frames while it is held),
    - switch: fast switching, 4..10 frames of random keys held 1..2 frames each.

    Deterministic for a given generator state.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out = np.empty(n, dtype=np.int64)
    kinds = [k for k, _ in _SEGMENTS]
    probs = np.array([p for _, p in _SEGMENTS])
    i = 0
    while i < n:
        kind = kinds[int(rng.choice(len(kinds), p=probs))]
        if kind == "hold":
            length = int(rng.integers(2, 25))
            out[i : i + length] = DIRECTIONS[int(rng.integers(len(DIRECTIONS)))]
        elif kind == "pause":
            length = int(rng.integers(2, 13))
            out[i : i + length] = NOOP
        elif kind == "fire":
            length = int(rng.integers(2, 9))
            out[i : i + length] = FIRE
        else:
            length = int(rng.integers(4, 11))
            j = i
            while j < min(i + length, n):
                hold = int(rng.integers(1, 3))
                out[j : j + hold] = int(rng.integers(len(ACTIONS)))
                j += hold
        i += length
    return out


def training_actions(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` action ids for training data: :func:`play_like_actions`, with a span every 8..47
    frames replaced by one of what play rarely holds long enough to learn:

    - idle (40%): noop for 8..64 frames, so a still player learns to stay exactly put;
    - alternating (40%): left/right or up/down switching every frame for 4..16 frames;
    - random (20%): an independent key per frame for 4..16 frames.

    Deterministic for a given generator state.
    """
    out = play_like_actions(rng, n)
    i = 0
    while i < n:
        i += int(rng.integers(8, 48))
        kind = int(rng.choice(3, p=[0.4, 0.4, 0.2]))
        length = int(rng.integers(8, 65)) if kind == 0 else int(rng.integers(4, 17))
        span = out[i : i + length]
        if kind == 0:
            span[:] = NOOP
        elif kind == 1:
            a, b = ((LEFT, RIGHT), (UP, DOWN))[int(rng.integers(2))]
            span[:] = np.resize([a, b] if rng.random() < 0.5 else [b, a], len(span))
        else:
            span[:] = rng.integers(0, len(ACTIONS), len(span))
        i += length
    return out


def held_key_actions(rng: np.random.Generator, n: int, n_actions: int) -> np.ndarray:
    """``n`` action ids over a game's ``n_actions`` keys (id 0 the no-op), for games without a
    policy of their own: :func:`training_actions`' mix for any key set. Segments of

    - hold (55%): one key other than the no-op held for 2..24 frames,
    - pause (15%): the no-op for 8..48 frames, so a still world learns to stay put,
    - alternate (20%): two keys switching every frame for 4..16 frames,
    - random (10%): an independent key per frame for 4..16 frames.

    Deterministic for a given generator state.
    """
    if n < 0 or n_actions < 1:
        raise ValueError(f"n must be >= 0 and n_actions >= 1, got n={n}, n_actions={n_actions}")
    out = np.zeros(n, dtype=np.int64)
    keys = max(n_actions - 1, 1)  # ids 1.. (or only the no-op)
    i = 0
    while i < n:
        kind = int(rng.choice(4, p=[0.55, 0.15, 0.2, 0.1]))
        if kind == 0:
            length = int(rng.integers(2, 25))
            out[i : i + length] = 1 + int(rng.integers(keys)) if n_actions > 1 else 0
        elif kind == 1:
            length = int(rng.integers(8, 49))
            out[i : i + length] = 0
        elif kind == 2:
            length = int(rng.integers(4, 17))
            a, b = (1 + rng.permutation(keys)[:2]) if keys > 1 else (0, min(1, n_actions - 1))
            out[i : i + length] = np.resize([a, b], len(out[i : i + length]))
        else:
            length = int(rng.integers(4, 17))
            out[i : i + length] = rng.integers(0, n_actions, len(out[i : i + length]))
        i += length
    return out
