"""What the bridge needs from a session: the `SessionLike`, `ChunkLike` and `RecordSink` protocols.

The real `sdk.Session` satisfies these structurally; the bridge never imports it. `bridges.fake`
holds a deterministic implementation used by the tests and the benchmark, and `check_facts`
checks the `describe()` map that every session must return.

Batched stepping (optional): a session factory with a `step_many` attribute,
`step_many([(session, action, prompt), ...]) -> [chunk or exception, ...]` (one result per call,
in order; `sdk.batch.step_together` is one), lets an engine thread step the sessions of several
clients whose steps are queued at once in one call (`bridges/engine.py`). A factory may also
have `engine_for(session) -> int`: the engine thread (modulo their number) that runs that
session's calls from hello on, so sessions that share a resource (`sdk/cluster.py`: a Ray actor)
share a thread and batch; without it sessions are dealt to the threads in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

# Codes a session's exceptions may carry in their `code` attribute; the server passes them through.
# WORKER_LOST: the session lived on a worker that is gone (sdk/cluster.py, sessions on Ray).
SESSION_ERROR_CODES = frozenset(
    {
        "NOT_RESET",
        "CLOSED",
        "BAD_ACTION",
        "BAD_PROMPT",
        "BAD_IMAGE",
        "BAD_SNAPSHOT",
        "BAD_ARGUMENT",
        "WORKER_LOST",
    }
)

Action = str | int | Sequence[str | int] | None


@runtime_checkable
class ChunkLike(Protocol):
    """One tick's output (read-only attributes; a frozen dataclass satisfies it)."""

    @property
    def frames(self) -> np.ndarray: ...  # uint8 (F, H, W, 3), C-contiguous

    @property
    def tick(self) -> int: ...  # reset returns tick 0, each step +1

    @property
    def action_tick(self) -> int: ...  # the tick whose frames this step's action first shapes

    @property
    def ms(self) -> float: ...  # compute time of this tick in milliseconds


@runtime_checkable
class SessionLike(Protocol):
    """A world advanced one chunk per tick (the contract `sdk.Session` satisfies)."""

    def describe(self) -> dict[str, Any]: ...

    def reset(
        self,
        *,
        prompt: str | None = None,
        image: np.ndarray | None = None,
        video: np.ndarray | None = None,
        seed: int | None = None,
    ) -> ChunkLike: ...

    def step(self, action: Action = None, *, prompt: str | None = None) -> ChunkLike: ...

    def set_prompt(self, prompt: str) -> None: ...

    def snapshot(self) -> Any: ...

    def restore(self, snapshot: Any) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class RecordSink(Protocol):
    """Where `record` messages land: clips in the training format.

    `append(frames uint8 (T, H, W, 3), actions int (T,), captions one per chunk) -> clip id`.
    """

    def append(self, frames: np.ndarray, actions: np.ndarray, captions: list[str]) -> str: ...


# describe() keys and the Python types their values must have.
FACT_TYPES: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "frame_height": int,
    "frame_width": int,
    "chunk_frames": int,
    "fps": (int, float),
    "actions": list,
    "max_prompt_chars": int,
    "history_chunks": int,
    "in_flight": int,
    "steps": int,
}


def check_facts(facts: Any) -> dict[str, Any]:
    """Check a `describe()` result and return it.

    Raises:
        TypeError: a key is missing or has the wrong type (a bug in the session, not the client).
    """
    if not isinstance(facts, dict):
        raise TypeError(f"describe() must return a dict, got {type(facts).__name__}")
    for key, kind in FACT_TYPES.items():
        value = facts.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise TypeError(f"describe()[{key!r}] must be {kind}, got {value!r}")
    actions = facts["actions"]
    if not actions or not all(isinstance(a, str) for a in actions) or actions[0] != "noop":
        raise TypeError("describe()['actions'] must be a non-empty list of str with 'noop' first")
    for key in ("frame_height", "frame_width", "chunk_frames"):
        if facts[key] <= 0:
            raise TypeError(f"describe()[{key!r}] must be positive, got {facts[key]}")
    return facts
