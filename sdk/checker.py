"""``check_session``: validate anything shaped like a session, in the spirit of gymnasium's
``check_env``. It uses only the session contract (``describe``, ``reset``, ``step``,
``set_prompt``, ``snapshot``, ``restore``, ``close``, errors with a ``code``), so it validates
``sdk.Session``, the bridge's fake, or your own implementation alike.

Each check is a small function; the first that fails raises :class:`CheckFailed` naming it.
Pass a freshly made session: the checks start with "step before reset" and end by closing it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sdk.errors import ERROR_CODES

__all__ = ["CheckFailed", "CheckReport", "check_session", "SESSION_CODES"]

# The error codes of the session contract (shared with the bridge's SessionLike).
SESSION_CODES = ERROR_CODES
FACT_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "frame_height": (int,),
    "frame_width": (int,),
    "chunk_frames": (int,),
    "fps": (int, float),
    "actions": (list,),
    "max_prompt_chars": (int,),
    "history_chunks": (int,),
    "in_flight": (int,),
    "steps": (int,),
}


class CheckFailed(AssertionError):
    """A session broke the contract; the message names the check and what was seen."""


@dataclass(frozen=True)
class CheckReport:
    """Checks that passed, in order, and the session's facts."""

    passed: tuple[str, ...]
    facts: dict[str, Any]


def _fail(check: str, msg: str) -> CheckFailed:
    return CheckFailed(f"[{check}] {msg}")


def _expect_error(check: str, code: str, call: Callable[[], Any]) -> BaseException:
    """Run ``call``; it must raise an exception whose ``code`` is ``code`` and that has a message."""
    try:
        call()
    except Exception as e:  # noqa: BLE001 - we inspect whatever the session raised
        got = getattr(type(e), "code", getattr(e, "code", None))
        if got != code:
            raise _fail(
                check,
                f"expected an error with code {code!r}, got {type(e).__name__} (code {got!r}): {e}",
            ) from e
        if not str(e).strip():
            raise _fail(check, f"{type(e).__name__} (code {code}) has an empty message") from e
        return e
    raise _fail(check, f"expected an error with code {code!r}, but the call succeeded")


def _check_chunk(check: str, chunk: Any, facts: dict[str, Any], tick: int) -> np.ndarray:
    shape = (facts["chunk_frames"], facts["frame_height"], facts["frame_width"], 3)
    frames = getattr(chunk, "frames", None)
    if not isinstance(frames, np.ndarray):
        raise _fail(check, f"chunk.frames must be a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8 or frames.shape != shape:
        raise _fail(check, f"chunk.frames must be uint8 {shape}, got {frames.dtype} {frames.shape}")
    if not frames.flags.c_contiguous:
        raise _fail(check, "chunk.frames must be C-contiguous")
    if getattr(chunk, "tick", None) != tick:
        raise _fail(check, f"expected tick {tick}, got {getattr(chunk, 'tick', None)!r}")
    at = getattr(chunk, "action_tick", None)
    if not isinstance(at, int) or at < tick or at > tick + facts["in_flight"] - 1:
        raise _fail(
            check,
            f"action_tick must be an int in [tick, tick + in_flight - 1] = "
            f"[{tick}, {tick + facts['in_flight'] - 1}], got {at!r}",
        )
    ms = getattr(chunk, "ms", None)
    if not isinstance(ms, float) or not ms >= 0.0:
        raise _fail(check, f"chunk.ms must be a float >= 0, got {ms!r}")
    return frames.copy()


def check_facts(facts: Any) -> dict[str, Any]:
    """``describe()`` must return the contract's keys with the right types."""
    if not isinstance(facts, dict):
        raise _fail("describe", f"describe() must return a dict, got {type(facts).__name__}")
    for key, kinds in FACT_TYPES.items():
        value = facts.get(key)
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise _fail("describe", f"describe()[{key!r}] must be {kinds}, got {value!r}")
    acts = facts["actions"]
    if not acts or acts[0] != "noop" or not all(isinstance(a, str) for a in acts):
        raise _fail("describe", "describe()['actions'] must be a list of str with 'noop' first")
    if len(set(acts)) != len(acts):
        raise _fail("describe", f"describe()['actions'] has duplicates: {acts}")
    for key in (
        "frame_height",
        "frame_width",
        "chunk_frames",
        "max_prompt_chars",
        "history_chunks",
        "in_flight",
        "steps",
    ):
        if facts[key] < 1:
            raise _fail("describe", f"describe()[{key!r}] must be >= 1, got {facts[key]}")
    return facts


def check_session(session: Any, *, seed: int = 0) -> CheckReport:
    """Run every check on a fresh session-like object; raise ``CheckFailed`` at the first failure.

    Checks, in order: describe facts; step before reset (NOT_RESET); reset chunk (shape, dtype,
    tick 0); each action by name, by id, per frame, and None; bad actions (BAD_ACTION) leave the
    tick unchanged; prompts (step/set_prompt, too long or not a str: BAD_PROMPT); bad seed
    (BAD_ARGUMENT); determinism (same seed and inputs, same frames); snapshot exactness;
    foreign snapshot (BAD_SNAPSHOT); image and video starts, wrong sizes (BAD_IMAGE naming the
    size); close twice, then use after close (CLOSED).
    """
    passed: list[str] = []
    facts = check_facts(session.describe())
    passed.append("describe")
    f, h, w = facts["chunk_frames"], facts["frame_height"], facts["frame_width"]
    names: list[str] = facts["actions"]
    n = len(names)

    _expect_error("step_before_reset", "NOT_RESET", lambda: session.step())
    passed.append("step_before_reset")

    _check_chunk("reset", session.reset(seed=seed), facts, 0)
    passed.append("reset")

    tick = 0
    steps: list[Any] = [
        *names,
        *range(n),
        None,
        [names[i % n] for i in range(f)],
        [i % n for i in range(f)],
    ]
    for action in steps:
        tick += 1
        _check_chunk(f"step({action!r})", session.step(action), facts, tick)
    passed.append("actions")

    bad_actions: list[Any] = ["no-such-key-xyz", n, -1, 1.5, [names[0]] * (f + 1), object()]
    for bad in bad_actions:
        _expect_error(f"bad action {bad!r}", "BAD_ACTION", functools.partial(session.step, bad))
    tick += 1
    _check_chunk("tick after bad actions", session.step(), facts, tick)  # errors did not advance
    passed.append("bad_actions")

    limit = facts["max_prompt_chars"]
    tick += 1
    _check_chunk("step(prompt=...)", session.step(names[0], prompt="night, two balls"), facts, tick)
    session.set_prompt("day")
    session.set_prompt("")
    _expect_error("prompt too long", "BAD_PROMPT", lambda: session.step(prompt="x" * (limit + 1)))
    _expect_error("prompt not str", "BAD_PROMPT", lambda: session.set_prompt(123))
    _expect_error(
        "set_prompt too long", "BAD_PROMPT", lambda: session.set_prompt("y" * (limit + 1))
    )
    passed.append("prompts")

    _expect_error("negative seed", "BAD_ARGUMENT", lambda: session.reset(seed=-1))
    passed.append("bad_seed")

    script: list[Any] = [names[i % n] for i in range(4)]
    prompts = {2: "night"}

    def rollout(start: Callable[[], Any]) -> list[np.ndarray]:
        out = [_check_chunk("rollout reset", start(), facts, 0)]
        for i, a in enumerate(script):
            out.append(
                _check_chunk("rollout", session.step(a, prompt=prompts.get(i + 1)), facts, i + 1)
            )
        return out

    first = rollout(lambda: session.reset(prompt="two balls", seed=seed))
    second = rollout(lambda: session.reset(prompt="two balls", seed=seed))
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        if not np.array_equal(a, b):
            raise _fail("determinism", f"same seed and inputs gave different frames at tick {i}")
    passed.append("determinism")

    session.reset(prompt="snapshot", seed=seed)
    for a in script[:2]:
        session.step(a)
    snap = session.snapshot()
    after = [
        _check_chunk("before restore", session.step(a, prompt=prompts.get(i)), facts, 3 + i)
        for i, a in enumerate(script)
    ]
    session.step(names[-1])  # move on, then come back
    session.restore(snap)
    again = [
        _check_chunk("after restore", session.step(a, prompt=prompts.get(i)), facts, 3 + i)
        for i, a in enumerate(script)
    ]
    for i, (a, b) in enumerate(zip(after, again, strict=True)):
        if not np.array_equal(a, b):
            raise _fail(
                "snapshot", f"restore then the same inputs gave different frames at tick {3 + i}"
            )
    _expect_error("restore(object())", "BAD_SNAPSHOT", lambda: session.restore(object()))
    passed.append("snapshot")

    image = np.full((h, w, 3), 128, dtype=np.uint8)
    _check_chunk("image start", session.reset(image=image, seed=seed), facts, 0)
    _check_chunk("step after image start", session.step(), facts, 1)
    video = np.zeros((2 * f + 1, h, w, 3), dtype=np.uint8)
    video[:, : h // 2] = 200
    _check_chunk("video start", session.reset(video=video, seed=seed), facts, 0)
    _check_chunk("step after video start", session.step(), facts, 1)
    for label, bad_img in (
        ("image wrong size", np.zeros((h + 1, w, 3), dtype=np.uint8)),
        ("image float", np.zeros((h, w, 3), dtype=np.float32)),
        ("image no channels", np.zeros((h, w), dtype=np.uint8)),
    ):
        err = _expect_error(label, "BAD_IMAGE", functools.partial(session.reset, image=bad_img))
        if label == "image wrong size" and not (str(h) in str(err) and str(w) in str(err)):
            raise _fail(label, f"the message must name the expected size {h}x{w}: {err}")
    _expect_error(
        "video wrong size",
        "BAD_IMAGE",
        lambda: session.reset(video=np.zeros((f, h, w + 2, 3), dtype=np.uint8)),
    )
    passed.append("starts")

    session.close()
    session.close()
    _expect_error("step after close", "CLOSED", lambda: session.step())
    _expect_error("reset after close", "CLOSED", lambda: session.reset())
    _expect_error("snapshot after close", "CLOSED", lambda: session.snapshot())
    passed.append("close")
    return CheckReport(passed=tuple(passed), facts=facts)
