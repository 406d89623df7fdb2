"""A deterministic fake session and record sink, for tests and the benchmark (no model).

`FakeSession` satisfies `SessionLike` and behaves like the real `sdk.Session` at its boundary:
same argument checks, same error codes, ticks, snapshots. Its frames are a cheap pattern fixed by
a hash of (seed, conditioning, every action and prompt so far), so a test can assert exact bytes
and a restore followed by the same step gives the same frames.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_ACTIONS = ("noop", "left", "right", "up", "down", "jump", "fire")


class FakeSessionError(Exception):
    """Base of the fake's errors; `code` is one of `session_api.SESSION_ERROR_CODES`."""

    code = "BAD_ARGUMENT"


class NotReset(FakeSessionError):
    code = "NOT_RESET"


class Closed(FakeSessionError):
    code = "CLOSED"


class BadAction(FakeSessionError):
    code = "BAD_ACTION"


class BadPrompt(FakeSessionError):
    code = "BAD_PROMPT"


class BadImage(FakeSessionError):
    code = "BAD_IMAGE"


class BadSnapshot(FakeSessionError):
    code = "BAD_SNAPSHOT"


class BadArgument(FakeSessionError):
    code = "BAD_ARGUMENT"


@dataclass(frozen=True)
class FakeChunk:
    frames: np.ndarray  # uint8 (F, H, W, 3)
    tick: int
    action_tick: int
    ms: float


@dataclass(frozen=True)
class FakeSnapshot:
    owner: int  # id() of the session that made it
    tick: int
    state: bytes
    prompt: str


def _digest(*parts: Any) -> bytes:
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).digest()


@functools.lru_cache(maxsize=8)
def _pattern(frames: int, height: int, width: int) -> np.ndarray:
    f = np.arange(frames, dtype=np.int32)[:, None, None, None]
    y = np.arange(height, dtype=np.int32)[None, :, None, None]
    x = np.arange(width, dtype=np.int32)[None, None, :, None]
    c = np.arange(3, dtype=np.int32)
    pattern = ((7 * f + 3 * y + 5 * x + 85 * c) & 0xFF).astype(np.uint8)  # (F, H, W, 3)
    pattern.flags.writeable = False
    return pattern


def fake_frames(state: bytes, frames: int, height: int, width: int) -> np.ndarray:
    """The fake's frames for a state: uint8 (F, H, W, 3), a gradient shifted by the state's first
    byte: pixel (f, y, x, c) = (7f + 3y + 5x + 85c + state[0]) mod 256.

    Example: state[0] = 16 gives pixel (f=0, y=0, x=1) = [21, 106, 191].
    """
    return _pattern(frames, height, width) + np.uint8(state[0])  # uint8 adds wrap modulo 256


class FakeSession:
    """A `SessionLike` with no model. `delay_s` makes every tick slow; `fail_at_tick` makes the
    step that would produce that tick raise `fail_with` ("memory" or "runtime"), for tests."""

    def __init__(
        self,
        *,
        height: int = 64,
        width: int = 64,
        chunk_frames: int = 4,
        actions: Sequence[str] = DEFAULT_ACTIONS,
        fps: float = 16.0,
        max_prompt_chars: int = 512,
        delay_s: float = 0.0,
        fail_at_tick: int | None = None,
        fail_with: str = "memory",
    ) -> None:
        self.height, self.width, self.chunk_frames = height, width, chunk_frames
        self.actions = list(actions)
        self.fps, self.max_prompt_chars = fps, max_prompt_chars
        self.delay_s, self.fail_at_tick, self.fail_with = delay_s, fail_at_tick, fail_with
        self._tick: int | None = None
        self._state = b""
        self._prompt = ""
        self._closed = False
        self._lock = threading.Lock()  # the real session is not re-entrant either
        self.close_calls = 0

    def describe(self) -> dict[str, Any]:
        return {
            "model": "fake",
            "frame_height": self.height,
            "frame_width": self.width,
            "chunk_frames": self.chunk_frames,
            "fps": self.fps,
            "actions": list(self.actions),
            "max_prompt_chars": self.max_prompt_chars,
            "history_chunks": 8,
            "in_flight": 1,
            "steps": 1,
        }

    # ------------------------------------------------------------ checks

    def _check_open(self) -> None:
        if self._closed:
            raise Closed("session is closed; make a new one")

    def _check_prompt(self, prompt: Any) -> str:
        if not isinstance(prompt, str):
            raise BadPrompt(f"prompt must be str, got {type(prompt).__name__}")
        if len(prompt) > self.max_prompt_chars:
            raise BadPrompt(f"prompt has {len(prompt)} chars; shorten to {self.max_prompt_chars}")
        return prompt

    def _action_id(self, action: Any) -> int:
        if isinstance(action, str):
            if action not in self.actions:
                raise BadAction(f"unknown action {action!r}; use one of {self.actions}")
            return self.actions.index(action)
        if isinstance(action, int | np.integer) and not isinstance(action, bool):
            if not 0 <= int(action) < len(self.actions):
                raise BadAction(f"action id {action} out of range 0..{len(self.actions) - 1}")
            return int(action)
        raise BadAction(f"action must be str or int, got {type(action).__name__}")

    def _action_ids(self, action: Any) -> tuple[int, ...]:
        if action is None:
            return (0,)
        if isinstance(action, str | int | np.integer):
            return (self._action_id(action),)
        if isinstance(action, Sequence):
            if len(action) != self.chunk_frames:
                raise BadAction(
                    f"got {len(action)} per-frame actions; give one or exactly {self.chunk_frames}"
                )
            return tuple(self._action_id(a) for a in action)
        raise BadAction(
            f"action must be str, int or a sequence of them, got {type(action).__name__}"
        )

    def _check_image(self, name: str, array: Any, ndim: int) -> np.ndarray:
        if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != ndim:
            raise BadImage(f"{name} must be a uint8 array with {ndim} dims")
        if array.shape[-3:] != (self.height, self.width, 3) or (ndim == 4 and not len(array)):
            raise BadImage(
                f"{name} shape {array.shape}; frames must be ({self.height}, {self.width}, 3)"
            )
        return array

    # ------------------------------------------------------------ the contract

    def _chunk(self, started: float) -> FakeChunk:
        assert self._tick is not None
        if self.delay_s:
            time.sleep(self.delay_s)
        frames = fake_frames(self._state, self.chunk_frames, self.height, self.width)
        ms = (time.perf_counter() - started) * 1000.0
        return FakeChunk(frames=frames, tick=self._tick, action_tick=self._tick, ms=ms)

    def reset(
        self,
        *,
        prompt: str | None = None,
        image: np.ndarray | None = None,
        video: np.ndarray | None = None,
        seed: int | None = None,
    ) -> FakeChunk:
        started = time.perf_counter()
        with self._lock:
            self._check_open()
            if prompt is not None:
                self._check_prompt(prompt)
            if image is not None and video is not None:
                raise BadArgument("give image or video, not both")
            if seed is not None and (not isinstance(seed, int) or not 0 <= seed < 2**63):
                raise BadArgument(f"seed must be an int in 0..2**63-1, got {seed!r}")
            cond = b""
            if image is not None:
                cond = self._check_image("image", image, 3).tobytes()
            if video is not None:
                cond = self._check_image("video", video, 4).tobytes()
            self._prompt = prompt or ""
            self._tick = 0
            self._state = _digest(seed or 0, hashlib.sha256(cond).digest(), self._prompt)
            return self._chunk(started)

    def step(self, action: Any = None, *, prompt: str | None = None) -> FakeChunk:
        started = time.perf_counter()
        with self._lock:
            self._check_open()
            if self._tick is None:
                raise NotReset("call reset() before step()")
            ids = self._action_ids(action)
            if prompt is not None:
                self._prompt = self._check_prompt(prompt)
            if self.fail_at_tick == self._tick + 1:
                if self.fail_with == "memory":
                    raise MemoryError("fake out of memory")
                raise RuntimeError("fake model failure")
            self._tick += 1
            self._state = _digest(self._state, ids, self._prompt)
            return self._chunk(started)

    def set_prompt(self, prompt: str) -> None:
        with self._lock:
            self._check_open()
            self._prompt = self._check_prompt(prompt)

    def snapshot(self) -> FakeSnapshot:
        with self._lock:
            self._check_open()
            if self._tick is None:
                raise NotReset("call reset() before snapshot()")
            return FakeSnapshot(id(self), self._tick, self._state, self._prompt)

    def restore(self, snapshot: Any) -> None:
        with self._lock:
            self._check_open()
            if not isinstance(snapshot, FakeSnapshot) or snapshot.owner != id(self):
                raise BadSnapshot("not a snapshot of this session; pass what snapshot() returned")
            self._tick, self._state, self._prompt = snapshot.tick, snapshot.state, snapshot.prompt

    def close(self) -> None:
        self.close_calls += 1
        self._closed = True


_FACTORY_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "height": int,
    "width": int,
    "chunk_frames": int,
    "delay_s": (int, float),
    "fail_at_tick": int,
    "fail_with": str,
}


# Bounds of the fake's numeric options, advertised in the hello reply's limits["options"].
FAKE_OPTION_BOUNDS: dict[str, tuple[float, float]] = {
    "height": (1, 1024),
    "width": (1, 1024),
    "chunk_frames": (1, 64),
    "delay_s": (0.0, 10.0),
    "fail_at_tick": (0, 2**31),
}


def fake_factory(options: dict[str, Any]) -> FakeSession:
    """A session factory for `bridges.server.Server`: `hello` options pick the fake's knobs.

    Raises:
        ValueError: an option is unknown or has the wrong type (the client gets BAD_REQUEST).
    """
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        kind = _FACTORY_OPTIONS.get(key)
        if kind is None:
            raise ValueError(f"unknown option {key!r}; the fake takes {sorted(_FACTORY_OPTIONS)}")
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"option {key!r} must be {kind}, got {value!r}")
        low, high = FAKE_OPTION_BOUNDS.get(key, (None, None))
        if low is not None and not low <= value <= high:  # type: ignore[operator]
            raise ValueError(f"option {key!r} must be in {low}..{high}, got {value!r}")
        kwargs[key] = value
    return FakeSession(**kwargs)


fake_factory.option_bounds = FAKE_OPTION_BOUNDS  # type: ignore[attr-defined]


def fake_step_many(calls: Sequence[tuple[FakeSession, Any, str | None]]) -> list[Any]:
    """A `step_many` for the fake (bridges/session_api.py): every session's tick, then one
    sleep of the longest `delay_s` for all, as a batched model pays one pass for the batch.
    Per call its chunk or the exception its step raised."""
    out: list[Any] = []
    for session, action, prompt in calls:
        saved, session.delay_s = session.delay_s, 0.0
        try:
            out.append(session.step(action, prompt=prompt))
        except Exception as exc:  # noqa: BLE001 (handed back to that caller)
            out.append(exc)
        finally:
            session.delay_s = saved
    delay = max((s.delay_s for s, _, _ in calls), default=0.0)
    if delay:
        time.sleep(delay)
    return out


def batched_fake_factory(options: dict[str, Any]) -> FakeSession:
    """`fake_factory` with `fake_step_many`: the server steps queued sessions together."""
    return fake_factory(options)


batched_fake_factory.option_bounds = FAKE_OPTION_BOUNDS  # type: ignore[attr-defined]
batched_fake_factory.step_many = fake_step_many  # type: ignore[attr-defined]


class MemoryRecordSink:
    """A `RecordSink` that keeps clips in a list."""

    def __init__(self) -> None:
        self.clips: list[tuple[str, np.ndarray, np.ndarray, list[str]]] = []
        self._lock = threading.Lock()

    def append(self, frames: np.ndarray, actions: np.ndarray, captions: list[str]) -> str:
        with self._lock:
            clip_id = f"clip-{len(self.clips):06d}"
            self.clips.append((clip_id, frames.copy(), actions.copy(), list(captions)))
            return clip_id
