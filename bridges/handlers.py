"""The dispatch table of the bridge server: one `Op` per message type.

Each op has a `check` that runs on the socket thread (validates the body cheaply, raises
`WireError`) and a `run` that runs on an engine thread (calls the session). Types not in
`OPS` get `UNKNOWN_TYPE`. Nothing here touches a socket.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridges.limits import ServerLimits
from bridges.session_api import RecordSink, SessionLike, check_facts
from bridges.wire import ENCODINGS, MAX_ID, VERSION, Message, WireError

SessionFactory = Callable[[dict[str, Any]], SessionLike]


@dataclass(frozen=True)
class Connection:
    """One TCP/IPC connection to the control socket: its file descriptor on the server and a
    counter that changes each time the descriptor is reused, so a new client that gets the same
    number is a different connection."""

    fd: int
    generation: int


@dataclass
class Slot:
    """One client's session as the server holds it. `busy` and `last_used` belong to the socket
    thread; `session`, `facts`, `snapshots` and `chunk_seq` to the slot's engine thread (the
    socket thread reads `facts` only after hello has answered)."""

    sid: str  # the session token: a secret; whoever sends it in `session` drives the session
    observer: str  # the frames topic: a second secret, for read-only subscribers
    home: Connection  # the connection that last sent a request with the token
    worker: int  # index of the engine thread that runs its calls
    last_used: float
    orphaned_since: float | None = None  # when `home` disconnected; reclaimed after orphan_ttl_s
    busy: bool = True  # hello is in flight when the slot is made
    session: SessionLike | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    snapshots: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    snapshot_ids: itertools.count[int] = field(default_factory=itertools.count)
    chunk_seq: int = 0  # seq of the next chunk published for this session


@dataclass(frozen=True)
class Outcome:
    """What an op answers: a reply body, arrays sent as buffers, and side effects."""

    body: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    publish: bool = False  # the reply is a chunk: also publish it on the frames socket
    drop_slot: bool = False  # forget the session after replying


@dataclass(frozen=True)
class Context:
    """What ops need from the server."""

    factory: SessionFactory
    limits: ServerLimits
    record_sink: RecordSink | None
    frames_endpoint: str


@dataclass(frozen=True)
class Op:
    check: Callable[[Message, Context, Slot | None], Any]  # socket thread -> args for run
    run: Callable[[Context, Slot, Any], Outcome] | None  # engine thread; None: check answers
    needs_session: bool = True
    buffers: frozenset[str] = frozenset()  # buffer names the type reads; others get BAD_BUFFER


# ---------------------------------------------------------------- body field checks


def _get(body: dict[str, Any], key: str, kind: Any, what: str) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise WireError("BAD_REQUEST", f"body {key!r} must be {what}, got {type(value).__name__}")
    return value


def max_prompt_chars(ctx: Context, slot: Slot | None) -> int:
    """The prompt limit a session's hello reply advertised: the server's or the session's, the
    smaller."""
    session_limit = slot.facts.get("max_prompt_chars") if slot is not None else None
    if isinstance(session_limit, int):
        return min(ctx.limits.max_prompt_chars, session_limit)
    return ctx.limits.max_prompt_chars


def _prompt(
    body: dict[str, Any], ctx: Context, slot: Slot | None, required: bool = False
) -> str | None:
    prompt = _get(body, "prompt", str, "a string")
    if prompt is None and required:
        raise WireError("BAD_REQUEST", "body needs 'prompt' (a string)")
    limit = max_prompt_chars(ctx, slot)
    if prompt is not None and len(prompt) > limit:
        raise WireError(
            "TOO_LARGE", f"prompt has {len(prompt)} chars; shorten it to max_prompt_chars={limit}"
        )
    return prompt  # type: ignore[no-any-return]


def _action_item(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise WireError("BAD_REQUEST", f"an action is an int id or a name, got {value!r:.40}")
    if isinstance(value, int) and not -MAX_ID <= value <= MAX_ID:
        raise WireError("BAD_REQUEST", "action id out of the int64 range")
    return value


def _action(body: dict[str, Any], ctx: Context) -> int | str | list[int | str] | None:
    action = body.get("action")
    if action is None:
        return None
    if isinstance(action, list):
        if len(action) > ctx.limits.max_frames:
            raise WireError(
                "TOO_LARGE", f"{len(action)} actions; max_frames={ctx.limits.max_frames}"
            )
        return [_action_item(a) for a in action]
    return _action_item(action)


def _session_facts(slot: Slot | None) -> dict[str, Any]:
    assert slot is not None and slot.facts, "needs_session ops get a slot that said hello"
    return slot.facts


# ---------------------------------------------------------------- ops


def _check_ping(msg: Message, ctx: Context, slot: Slot | None) -> Outcome:
    return Outcome({"time": time.time()})


def _check_hello(msg: Message, ctx: Context, slot: Slot | None) -> dict[str, Any]:
    versions = msg.body.get("versions", [VERSION])
    if not isinstance(versions, list) or VERSION not in versions:
        raise WireError(
            "VERSION", f"this server speaks version {VERSION}; send versions: [{VERSION}]"
        )
    options = _get(msg.body, "options", dict, "a map") or {}
    return options  # type: ignore[no-any-return]


def option_bounds(factory: SessionFactory) -> dict[str, list[float]]:
    """`{name: [min, max]}` of the factory's numeric hello options (its `option_bounds`)."""
    bounds = getattr(factory, "option_bounds", {})
    return {str(k): [lo, hi] for k, (lo, hi) in bounds.items()}


class BadOptions(Exception):
    code = "BAD_REQUEST"


def _run_hello(ctx: Context, slot: Slot, options: dict[str, Any]) -> Outcome:
    try:
        session = ctx.factory(options)
    except (ValueError, TypeError) as exc:  # a session's own typed errors are ValueErrors too
        raise BadOptions(f"bad hello options: {exc}") from exc
    try:
        facts = check_facts(session.describe())
    except TypeError as exc:  # a bug in the session, not in the request: INTERNAL
        session.close()
        raise RuntimeError(f"the session factory made a bad session: {exc}") from exc
    except BaseException:
        session.close()
        raise
    slot.session, slot.facts = session, facts
    engine_for = getattr(ctx.factory, "engine_for", None)
    if callable(engine_for):  # sessions sharing a resource share an engine thread and batch
        slot.worker = int(engine_for(session)) % max(1, ctx.limits.engine_threads)
    limits = ctx.limits.advertised()
    limits["max_prompt_chars"] = max_prompt_chars(ctx, slot)
    limits["options"] = option_bounds(ctx.factory)
    body = {
        "version": VERSION,
        "server": "chunkworld-bridge",
        "session": slot.sid,
        "observer": slot.observer,
        "model": facts,
        "limits": limits,
        "frames_endpoint": ctx.frames_endpoint,
        "encodings": list(ENCODINGS),
        "types": sorted(OPS),
        "record": ctx.record_sink is not None,
    }
    return Outcome(body)


def chunk_outcome(chunk: Any) -> Outcome:
    """A chunk as a reply (and the chunk to publish)."""
    frames = chunk.frames
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4:
        raise TypeError(f"session returned frames that are not uint8 (F, H, W, 3): {frames!r:.80}")
    body = {"tick": int(chunk.tick), "action_tick": int(chunk.action_tick), "ms": float(chunk.ms)}
    return Outcome(body, {"frames": frames}, publish=True)


def _check_reset(msg: Message, ctx: Context, slot: Slot | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"prompt": _prompt(msg.body, ctx, slot)}
    seed = _get(msg.body, "seed", int, "an int")
    if seed is not None and not 0 <= seed <= MAX_ID:
        raise WireError("BAD_REQUEST", "seed must be in 0..2**63-1")
    kwargs["seed"] = seed
    for name in ("image", "video"):
        array = msg.arrays.get(name)
        if array is not None and array.dtype != np.uint8:
            raise WireError("BAD_BUFFER", f"{name} must be uint8, got {array.dtype}")
        kwargs[name] = array
    video = kwargs["video"]
    if video is not None and len(video) > ctx.limits.max_frames:
        raise WireError(
            "TOO_LARGE", f"video has {len(video)} frames; max_frames={ctx.limits.max_frames}"
        )
    return kwargs


def _run_reset(ctx: Context, slot: Slot, kwargs: dict[str, Any]) -> Outcome:
    assert slot.session is not None
    for name in ("image", "video"):  # wire buffers are read-only; the session may write
        if kwargs[name] is not None:
            kwargs[name] = kwargs[name].copy()
    return chunk_outcome(slot.session.reset(**kwargs))


def _check_step(msg: Message, ctx: Context, slot: Slot | None) -> tuple[Any, str | None]:
    return _action(msg.body, ctx), _prompt(msg.body, ctx, slot)


def _run_step(ctx: Context, slot: Slot, args: tuple[Any, str | None]) -> Outcome:
    assert slot.session is not None
    action, prompt = args
    return chunk_outcome(slot.session.step(action, prompt=prompt))


def _check_set_prompt(msg: Message, ctx: Context, slot: Slot | None) -> str | None:
    return _prompt(msg.body, ctx, slot, required=True)


def _run_set_prompt(ctx: Context, slot: Slot, prompt: str) -> Outcome:
    assert slot.session is not None
    slot.session.set_prompt(prompt)
    return Outcome({})


def _check_none(msg: Message, ctx: Context, slot: Slot | None) -> None:
    return None


def _run_snapshot(ctx: Context, slot: Slot, _: None) -> Outcome:
    assert slot.session is not None
    snap = slot.session.snapshot()
    snap_id = f"snap-{next(slot.snapshot_ids)}"
    slot.snapshots[snap_id] = snap
    while len(slot.snapshots) > ctx.limits.max_snapshots:
        slot.snapshots.popitem(last=False)  # forget the oldest
    return Outcome({"snapshot": snap_id})


def _check_restore(msg: Message, ctx: Context, slot: Slot | None) -> str:
    snap_id = _get(msg.body, "snapshot", str, "a snapshot id string")
    if snap_id is None:
        raise WireError("BAD_REQUEST", "body needs 'snapshot': the id a snapshot reply gave")
    return snap_id  # type: ignore[no-any-return]


class UnknownSnapshot(Exception):
    code = "BAD_SNAPSHOT"


def _run_restore(ctx: Context, slot: Slot, snap_id: str) -> Outcome:
    assert slot.session is not None
    if snap_id not in slot.snapshots:
        raise UnknownSnapshot(
            f"unknown snapshot id {snap_id!r:.80}; use one a snapshot reply gave "
            f"(the server keeps the last {ctx.limits.max_snapshots})"
        )
    slot.session.restore(slot.snapshots[snap_id])
    return Outcome({})


def _run_close(ctx: Context, slot: Slot, _: None) -> Outcome:
    if slot.session is not None:
        slot.session.close()
    return Outcome({}, drop_slot=True)


def _check_record(msg: Message, ctx: Context, slot: Slot | None) -> tuple[Any, ...]:
    if ctx.record_sink is None:
        raise WireError("UNSUPPORTED", "this server keeps no recordings (started without a sink)")
    facts = _session_facts(slot)
    frames, actions = msg.arrays.get("frames"), msg.arrays.get("actions")
    captions = _get(msg.body, "captions", list, "a list of strings")
    if frames is None or actions is None or captions is None:
        raise WireError(
            "BAD_REQUEST", "record needs buffers 'frames' and 'actions' and body 'captions'"
        )
    size = (facts["frame_height"], facts["frame_width"], 3)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != size:
        raise WireError("BAD_IMAGE", f"frames must be uint8 (T, {size[0]}, {size[1]}, 3)")
    count, per_chunk = len(frames), facts["chunk_frames"]
    if count > ctx.limits.max_frames:
        raise WireError("TOO_LARGE", f"{count} frames; max_frames={ctx.limits.max_frames}")
    if count == 0 or count % per_chunk:
        raise WireError("BAD_REQUEST", f"{count} frames; send a positive multiple of {per_chunk}")
    if actions.dtype.kind != "i" or actions.shape != (count,):
        raise WireError("BAD_ACTION", f"actions must be int32/int64 of shape ({count},)")
    if count and not (0 <= int(actions.min()) and int(actions.max()) < len(facts["actions"])):
        raise WireError("BAD_ACTION", f"action ids must be in 0..{len(facts['actions']) - 1}")
    if len(captions) != count // per_chunk or not all(isinstance(c, str) for c in captions):
        raise WireError(
            "BAD_REQUEST", f"captions must be {count // per_chunk} strings, one per chunk"
        )
    limit = max_prompt_chars(ctx, slot)
    if any(len(c) > limit for c in captions):
        raise WireError("TOO_LARGE", f"a caption is over max_prompt_chars={limit}")
    return frames, actions, captions


def _run_record(ctx: Context, slot: Slot, args: tuple[Any, ...]) -> Outcome:
    assert ctx.record_sink is not None
    frames, actions, captions = args
    clip = ctx.record_sink.append(frames.copy(), actions.astype(np.int64), list(captions))
    return Outcome({"clip": str(clip)})


OPS: dict[str, Op] = {
    "ping": Op(_check_ping, None, needs_session=False),
    "hello": Op(_check_hello, _run_hello, needs_session=False),
    "reset": Op(_check_reset, _run_reset, buffers=frozenset({"image", "video"})),
    "step": Op(_check_step, _run_step),
    "set_prompt": Op(_check_set_prompt, _run_set_prompt),
    "snapshot": Op(_check_none, _run_snapshot),
    "restore": Op(_check_restore, _run_restore),
    "close": Op(_check_none, _run_close),
    "record": Op(_check_record, _run_record, buffers=frozenset({"frames", "actions"})),
}
