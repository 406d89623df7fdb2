"""The game protocol: what a game must be for ``chunkworld train --game`` to learn it, and the
checker that says exactly what is wrong with one before any training starts.

A game is a plain Python object, numpy only (no torch, nothing of the model)::

    actions: list[str]                 key names, lower case; actions[0] is the no-op, "noop"
    reset(seed: int) -> frame          the first frame; the same seed gives the same frame
    step(action: str) -> frame         the next frame, the first that shows the action's effect

A frame is an ``(H, W, 3)`` ``uint8`` array; ``H`` and ``W`` are multiples of 16 from 16 to 128
and every frame of a game has the same size. The same seed and the same actions give the same
frames (draw randomness from a generator seeded in ``reset``, never from the clock).

Optional; the recipe and the evaluation use them when present:

- ``describe() -> str``: a caption of the current scene (text starts, captioned training).
- ``apply_prompt(text: str) -> list[str]``: apply a prompt; returns the event kinds it caused
  (e.g. ``["rain"]``), empty if none.
- ``prompts: dict[str, list[str]]``: event kind -> training phrasings; ``held_out_prompts`` the
  same shape, phrasings never trained on (>= 5 per kind), used only by the evaluation.
- ``policy(rng: numpy.random.Generator) -> str``: the next action of a play-like stream (else
  the recipe holds keys of ``actions`` like a person at a keyboard, see
  :func:`world.games.actions.held_key_actions`).
- ``player(frame) -> tuple[float, float] | None``: the player's position (x, y) in pixels, from
  the pixels alone (it is also run on generated frames), for the key-following lines.
- ``objects(frame) -> dict[str, int]``: counts of the game's object kinds in a frame, from the
  pixels alone, for the "objects kept over a long rollout" lines.

:func:`validate_game` checks all of it and raises :class:`GameError` naming the seed and the
tick that reproduce a failure. ``docs/your-game.md`` has a complete example.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

MAX_SIDE = 128  # largest frame side the recipe trains, pixels
SIDE_STEP = 16  # frame sides are multiples of this (the codec's patch grid)


@runtime_checkable
class GameProtocol(Protocol):
    """The required part of a game (the module docstring is the reference)."""

    actions: list[str]

    def reset(self, seed: int) -> np.ndarray: ...

    def step(self, action: str) -> np.ndarray: ...


class GameError(ValueError):
    """A game breaks the protocol; the message says what, and how to reproduce it."""


def _name(game: object) -> str:
    cls = type(game)
    return f"{cls.__module__}.{cls.__qualname__}"


def check_frame(frame: object, where: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """``frame`` as an array if it is an allowed frame (of ``size`` when given), else GameError
    whose message starts with ``where`` (e.g. ``"reset(seed=3)"``)."""
    if not isinstance(frame, np.ndarray):
        raise GameError(f"{where} returned {type(frame).__name__}; return a numpy array (H, W, 3)")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise GameError(f"{where} returned shape {frame.shape}; a frame is (H, W, 3) RGB")
    if frame.dtype != np.uint8:
        raise GameError(
            f"{where} returned dtype {frame.dtype}; frames are uint8 (0..255): "
            "use np.clip(x, 0, 255).astype(np.uint8)"
        )
    h, w = frame.shape[:2]
    if size is None:
        for side, label in ((h, "height"), (w, "width")):
            if side % SIDE_STEP or not SIDE_STEP <= side <= MAX_SIDE:
                raise GameError(
                    f"{where} returned a frame of {h}x{w}; its {label} {side} must be a multiple "
                    f"of {SIDE_STEP} from {SIDE_STEP} to {MAX_SIDE}"
                )
    elif (h, w) != size:
        raise GameError(
            f"{where} returned a frame of {h}x{w} after frames of {size[0]}x{size[1]}; every "
            "frame of a game has the same size"
        )
    return frame


def check_actions(game: object) -> list[str]:
    """The game's action names, or GameError: a non-empty list of distinct non-empty strings."""
    actions = getattr(game, "actions", None)
    if not isinstance(actions, (list, tuple)) or not actions:
        raise GameError(
            f"{_name(game)}.actions is {actions!r}; give a non-empty list of key names, the "
            'no-op first, e.g. ["noop", "left", "right"]'
        )
    bad = [a for a in actions if not isinstance(a, str) or not a.strip()]
    if bad:
        raise GameError(f"{_name(game)}.actions holds {bad!r}; every action is a non-empty str")
    if actions[0] != "noop":
        raise GameError(
            f"{_name(game)}.actions starts with {actions[0]!r}; the first action is the no-op and "
            "is named 'noop' (the SDK, the play window and the bridge send it by that name)"
        )
    odd = [a for a in actions if a != a.strip().lower()]
    if odd:
        raise GameError(
            f"{_name(game)}.actions has {odd}; names are lower case without spaces around them "
            "(the SDK matches keys case-insensitively)"
        )
    dup = sorted({a for a in actions if list(actions).count(a) > 1})
    if dup:
        raise GameError(f"{_name(game)}.actions names {dup} more than once; names are unique")
    if len(actions) > 256:
        raise GameError(f"{_name(game)}.actions has {len(actions)} actions; at most 256")
    return list(actions)


def _call(game: object, fn: Callable[..., Any], what: str, seed: int, tick: int) -> Any:
    try:
        return fn()
    except GameError:
        raise
    except Exception as e:
        raise GameError(
            f"{_name(game)}.{what} raised {type(e).__name__}: {e} (reproduce: reset(seed={seed}) "
            f"then the same actions up to tick {tick})"
        ) from e


def _play(
    game: Any, seed: int, ticks: int, actions: list[str], use_policy: bool
) -> tuple[list[np.ndarray], list[str]]:
    """Frames of ``reset(seed)`` and ``ticks`` steps, the actions drawn from the game's policy
    (when asked and present) or uniformly, from a generator seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    first = check_frame(
        _call(game, lambda: game.reset(seed), f"reset(seed={seed})", seed, 0), f"reset({seed})"
    )
    size = first.shape[:2]
    frames, taken = [first.copy()], []
    policy = getattr(game, "policy", None) if use_policy else None
    for t in range(1, ticks + 1):
        if callable(policy):
            a = _call(game, lambda: policy(rng), "policy(rng)", seed, t)
            if a not in actions:
                raise GameError(
                    f"{_name(game)}.policy returned {a!r} at tick {t} (seed {seed}), not one of "
                    f"its actions {actions}"
                )
        else:
            a = actions[int(rng.integers(len(actions)))]
        taken.append(a)
        where = f"step({a!r}) at tick {t} after reset(seed={seed})"
        frame = _call(game, lambda a=a: game.step(a), f"step({a!r})", seed, t)
        frames.append(check_frame(frame, where, size).copy())
    return frames, taken


def validate_game(game: Any, *, seeds: tuple[int, ...] = (0, 1), ticks: int = 48) -> dict:
    """Check ``game`` against the protocol; returns a summary of what it offers.

    Plays each seed for ``ticks`` ticks twice (the game's policy on the first seed when it has
    one, uniform random keys otherwise) and checks the frames, their size, that the two plays
    match exactly, and the optional parts that are present.

    Returns:
        ``{"actions": [...], "frame_size": (H, W), "optional": [names present]}``.

    Raises:
        GameError: what is wrong, with the seed and tick that reproduce it.
    """
    name = _name(game)
    for method in ("reset", "step"):
        if not callable(getattr(game, method, None)):
            raise GameError(f"{name} has no {method}() method; see docs/your-game.md")
    actions = check_actions(game)
    size: tuple[int, int] | None = None
    for i, seed in enumerate(seeds):
        a, taken = _play(game, seed, ticks, actions, use_policy=i == 0)
        if size is not None and a[0].shape[:2] != size:
            raise GameError(
                f"{name}: reset(seed={seed}) gives {a[0].shape[0]}x{a[0].shape[1]} frames, "
                f"reset(seed={seeds[0]}) {size[0]}x{size[1]}; every frame has the same size"
            )
        size = a[0].shape[:2]
        again = check_frame(
            _call(game, lambda s=seed: game.reset(s), f"reset(seed={seed})", seed, 0), "reset"
        )
        if not np.array_equal(again, a[0]):
            raise GameError(
                f"{name}: reset(seed={seed}) gave a different frame the second time; seed every "
                "random choice from the seed (np.random.default_rng(seed) in reset), not the clock"
            )
        for t, act in enumerate(taken, start=1):
            frame = _call(game, lambda act=act: game.step(act), f"step({act!r})", seed, t)
            if not np.array_equal(check_frame(frame, f"step({act!r})", size), a[t]):
                raise GameError(
                    f"{name}: step({act!r}) at tick {t} after reset(seed={seed}) gave a different "
                    "frame the second time with the same actions; a game is deterministic "
                    "for a seed (keep all state in the object, reset all of it in reset)"
                )
    assert size is not None
    return {"actions": actions, "frame_size": size, "optional": _check_optional(game, size)}


def _check_optional(game: Any, size: tuple[int, int]) -> list[str]:
    name, present = _name(game), []
    frame = np.zeros((*size, 3), dtype=np.uint8)
    if callable(getattr(game, "describe", None)):
        text = _call(game, game.describe, "describe()", 0, 0)
        if not isinstance(text, str):
            raise GameError(f"{name}.describe() returned {type(text).__name__}; return a str")
        present.append("describe")
    if callable(getattr(game, "policy", None)):
        present.append("policy")
    for attr in ("prompts", "held_out_prompts"):
        table = getattr(game, attr, None)
        if table is None:
            continue
        ok = isinstance(table, dict) and all(
            isinstance(k, str) and isinstance(v, list) and v and all(isinstance(p, str) for p in v)
            for k, v in table.items()
        )
        if not ok:
            raise GameError(
                f"{name}.{attr} must map each event kind (str) to a non-empty list of phrasings"
            )
        present.append(attr)
    if "held_out_prompts" in present:
        few = {k: len(v) for k, v in game.held_out_prompts.items() if len(v) < 5}
        if few:
            raise GameError(f"{name}.held_out_prompts has fewer than 5 phrasings for {few}")
    if callable(getattr(game, "apply_prompt", None)):
        if "prompts" in present:  # without a table the recipe trains no prompts
            game.reset(0)
            kind, phrasings = next(iter(game.prompts.items()))
            got = _call(game, lambda: game.apply_prompt(phrasings[0]), "apply_prompt", 0, 0)
            if not isinstance(got, list) or not all(isinstance(k, str) for k in got):
                raise GameError(f"{name}.apply_prompt() returned {got!r}; return a list of str")
        present.append("apply_prompt")
    if callable(getattr(game, "player", None)):
        pos = _call(game, lambda: game.player(frame), "player(frame)", 0, 0)
        if pos is not None and not (isinstance(pos, tuple) and len(pos) == 2):
            raise GameError(f"{name}.player() returned {pos!r}; return (x, y) or None")
        present.append("player")
    if callable(getattr(game, "objects", None)):
        counts = _call(game, lambda: game.objects(frame), "objects(frame)", 0, 0)
        if not isinstance(counts, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, np.integer)) for k, v in counts.items()
        ):
            raise GameError(f"{name}.objects() returned {counts!r}; return dict[str, int]")
        present.append("objects")
    return present
