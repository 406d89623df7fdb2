"""Action logs and exact replay.

An :class:`ActionLog` is what a played (or scripted) run did to its session, in order: the start
(seed, caption, start frames), every step's per-frame actions and new caption, every save and
load of the world. With the model it names (its fingerprint) and the sampler settings it records,
:func:`replay` does the same calls again and yields the same chunks, bit for bit: a session's
frames are a function of its model, settings, seed, start and inputs (the RNG lives in the
rollout state). Replay on the same kind of machine and torch build; float results may differ
between CPUs.

On disk a log is JSON (``run.log.json``); start images and videos are kept beside it as ``.npy``
files named by the log and checked by their SHA-256.

>>> from sdk import Session
>>> from sdk.play.log import LoggedSession, replay
>>> with Session.load("tiny") as s:
...     run = LoggedSession(s)
...     first = run.reset(prompt="night", seed=3)
...     last = run.step("right", prompt="day")
...     again = list(replay(s, run.log))
>>> [c.tick for c in again], bool((again[-1].frames == last.frames).all())
([0, 1], True)
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ChunkworldError
from sdk.session import Session
from sdk.snapshot import Snapshot
from sdk.spaces import Action
from sdk.types import Chunk

LOG_FORMAT = "chunkworld-action-log"
LOG_VERSION = 1


class LogError(ChunkworldError, ValueError):
    """A log that is corrupt, from another model or sampler setting, or that cannot be replayed."""

    code = "BAD_ARGUMENT"


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@dataclass
class ActionLog:
    """A run's header (model, sampler settings) and its events, oldest first.

    Events are dicts, one of:
      ``{"op": "reset", "seed": int, "prompt": str, "start": "caption"|"image"|"video"}``
        (image and video starts keep their frames in ``start_frames[i]``, i the event's index);
      ``{"op": "step", "actions": [id, ...], "prompt": str | None}`` (per-frame ids; prompt is
        the new caption given to that step, None for none);
      ``{"op": "prompt", "prompt": str}``: ``set_prompt`` between steps;
      ``{"op": "save", "slot": str}`` and ``{"op": "load", "slot": str}``: a snapshot taken and
        restored under a name (a file path in ``chunkworld play``). A load of a slot saved earlier
        in the log replays from the replayed state; a load of a file saved elsewhere carries the
        file's ``sha256`` and replays from the file.
    """

    model: str
    fingerprint: str
    steps: int
    in_flight: int
    precision: str
    chunk_frames: int
    prior_level: float  # the session's resolved level (0: no prior); part of the setting
    pixel_history: bool = False  # logs from before the option ran without it
    palette: bool = False  # logs from before palettes ran without one
    events: list[dict[str, Any]] = field(default_factory=list)
    start_frames: dict[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def for_session(cls, session: Session) -> ActionLog:
        """An empty log with ``session``'s model and sampler settings."""
        i = session.info
        return cls(
            i.model,
            i.fingerprint,
            i.steps,
            i.in_flight,
            i.precision,
            i.chunk_frames,
            i.prior_level,
            i.pixel_history,
            i.palette,
        )

    @property
    def ticks(self) -> int:
        """Steps in the log."""
        return sum(e["op"] == "step" for e in self.events)

    def prompts(self) -> list[tuple[int, str]]:
        """``(event index, caption)`` of every step that set a caption."""
        return [
            (n, e["prompt"])
            for n, e in enumerate(self.events)
            if e["op"] == "step" and e["prompt"] is not None
        ]

    # --- files ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the log as JSON at ``path`` and each start's frames beside it
        (``<path stem>.start<N>.npy``); returns ``path``."""
        path = Path(path)
        events = []
        for n, event in enumerate(self.events):
            event = dict(event)
            if n in self.start_frames:
                frames = self.start_frames[n]
                name = f"{path.name.removesuffix('.json')}.start{n}.npy"
                np.save(path.with_name(name), frames, allow_pickle=False)
                event.update(frames=name, sha256=_sha256(frames))
            events.append(event)
        doc = {
            "format": LOG_FORMAT,
            "version": LOG_VERSION,
            "model": self.model,
            "fingerprint": self.fingerprint,
            "steps": self.steps,
            "in_flight": self.in_flight,
            "precision": self.precision,
            "chunk_frames": self.chunk_frames,
            "prior_level": self.prior_level,
            "pixel_history": self.pixel_history,
            "palette": self.palette,
            "events": events,
        }
        path.write_text(json.dumps(doc, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ActionLog:
        """Read a log written by :meth:`save`; raises ``LogError`` saying what is wrong."""
        path = Path(path)
        if not path.is_file():
            raise LogError(f"{path}: no such action log (chunkworld play --record writes one)")
        try:
            doc = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise LogError(f"{path}: not an action log, the JSON is corrupt ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != LOG_FORMAT:
            raise LogError(f"{path}: not a chunkworld action log (format tag missing)")
        if doc.get("version") != LOG_VERSION:
            raise LogError(
                f"{path}: action log version {doc.get('version')!r}; this SDK reads {LOG_VERSION}"
            )
        try:
            log = cls(
                _typed(doc, "model", str),
                _typed(doc, "fingerprint", str),
                _typed(doc, "steps", int),
                _typed(doc, "in_flight", int),
                _typed(doc, "precision", str),
                _typed(doc, "chunk_frames", int),
                _typed(doc, "prior_level", float),
                _typed({"pixel_history": False, **doc}, "pixel_history", bool),
                _typed({"palette": False, **doc}, "palette", bool),
            )
            if not isinstance(doc["events"], list):
                raise LogError("events must be a list")
            for n, event in enumerate(doc["events"]):
                if not isinstance(event, dict):
                    raise LogError(f"event {n} must be an object")
                log.events.append(_check_event(event, log.chunk_frames))
                if "frames" in event:
                    frames = np.load(path.with_name(event["frames"]), allow_pickle=False)
                    if _sha256(frames) != event["sha256"]:
                        raise LogError(f"start frames {event['frames']} do not match the log")
                    log.start_frames[n] = frames
        except LogError as e:
            raise LogError(f"{path}: {e}") from None
        except (KeyError, TypeError, ValueError, OSError) as e:
            raise LogError(f"{path}: the action log is damaged ({e!r})") from None
        return log


# The range of each number a log holds: what a session can have been run with.
_RANGES: dict[str, tuple[float, float]] = {
    "steps": (1, 1000),
    "in_flight": (1, 64),
    "chunk_frames": (1, 256),
    "prior_level": (0.0, 0.999999),
    "seed": (0, 2**63 - 1),
    "action": (0, 2**31 - 1),
}


def _typed(doc: dict[str, Any], key: str, kind: type, where: str = "") -> Any:
    """``doc[key]`` if it is a JSON value of ``kind`` (int: no bool or float; float: finite,
    ints too; str) within its range; raises LogError naming the field."""
    value = doc[key]
    if kind is int:
        ok = type(value) is int
    elif kind is float:
        ok = type(value) in (int, float) and math.isfinite(value)
    else:
        ok = isinstance(value, kind)
    low, high = _RANGES.get(key, (None, None))
    if ok and low is not None:
        ok = low <= value <= high
    if not ok:
        span = "" if low is None else f" in [{low:g}, {high:g}]"
        raise LogError(f"{where}{key}={value!r:.60}: must be a {kind.__name__}{span}")
    return value


def _check_event(event: dict[str, Any], chunk_frames: int) -> dict[str, Any]:
    """One event as :class:`ActionLog` keeps it; raises for anything malformed."""
    op = _typed(event, "op", str, "event ")
    if op == "reset":
        out = {"op": op, "seed": _typed(event, "seed", int, "reset ")}
        out["prompt"] = _typed(event, "prompt", str, "reset ")
        out["start"] = _typed(event, "start", str, "reset ")
        if out["start"] not in ("caption", "image", "video"):
            raise LogError(f"unknown start {out['start']!r}")
        return out
    if op == "step":
        if not isinstance(event["actions"], list):
            raise LogError(f"step actions={event['actions']!r:.60}: must be a list of action ids")
        actions = [_typed({"action": a}, "action", int, "step ") for a in event["actions"]]
        if len(actions) != chunk_frames:
            raise LogError(f"a step has {len(actions)} actions, the log's chunks {chunk_frames}")
        prompt = event["prompt"]
        if prompt is not None:
            _typed(event, "prompt", str, "step ")
        return {"op": op, "actions": actions, "prompt": prompt}
    if op == "prompt":
        return {"op": op, "prompt": _typed(event, "prompt", str, "prompt event ")}
    if op in ("save", "load"):
        out = {"op": op, "slot": _typed(event, "slot", str, f"{op} ")}
        if "sha256" in event:
            out["sha256"] = _typed(event, "sha256", str, f"{op} ")
        return out
    raise LogError(f"unknown event {op!r}")


class LoggedSession:
    """A session whose reset, step, save and load are written to an :class:`ActionLog` as they
    happen. Use it in place of the session; ``log`` is the run so far."""

    def __init__(self, session: Session, log: ActionLog | None = None) -> None:
        self.session = session
        self.log = log if log is not None else ActionLog.for_session(session)

    def __getattr__(self, name: str) -> Any:
        """Everything else (``info``, ``tick``, ``snapshot``...) is the session's, so a logged
        session can stand in for a session, e.g. ``ChunkworldEnv(session=LoggedSession(s))``."""
        return getattr(self.session, name)

    def reset(
        self,
        *,
        prompt: str | None = None,
        image: np.ndarray | None = None,
        video: np.ndarray | None = None,
        seed: int | None = None,
    ) -> Chunk:
        chunk = self.session.reset(prompt=prompt, image=image, video=video, seed=seed)
        n = len(self.log.events)
        start = "image" if image is not None else "video" if video is not None else "caption"
        used_seed = self.session.seed if seed is None else int(seed)
        self.log.events.append(
            {"op": "reset", "seed": used_seed, "prompt": chunk.prompt, "start": start}
        )
        if image is not None or video is not None:
            self.log.start_frames[n] = np.array(image if image is not None else video)
        return chunk

    def step(self, action: Action = None, *, prompt: str | None = None) -> Chunk:
        chunk = self.session.step(action, prompt=prompt)
        self.log.events.append(
            {"op": "step", "actions": [int(a) for a in chunk.actions], "prompt": prompt}
        )
        return chunk

    def set_prompt(self, prompt: str) -> None:
        self.session.set_prompt(prompt)
        self.log.events.append({"op": "prompt", "prompt": self.session.prompt})

    def save(self, path: str | Path) -> Snapshot:
        """Snapshot the world to ``path`` and log it under that name."""
        snap = self.session.snapshot()
        snap.save(path)
        self.log.events.append({"op": "save", "slot": str(path)})
        return snap

    def load(self, path: str | Path) -> None:
        """Restore the world from the snapshot file ``path`` and log it (with the file's hash,
        so a replay can find the file again when the log did not save it itself)."""
        data = Path(path).read_bytes() if Path(path).is_file() else b""
        self.session.restore(Snapshot.load(path))
        sha = hashlib.sha256(data).hexdigest()
        self.log.events.append({"op": "load", "slot": str(path), "sha256": sha})


def check_log_fits(session: Session, log: ActionLog) -> None:
    """Raise ``LogError`` unless ``session`` runs the log's model with its sampler settings."""
    i = session.info
    if log.fingerprint != i.fingerprint:
        raise LogError(
            f"the log was played on model {log.model!r} (fingerprint {log.fingerprint}); this "
            f"session runs {i.model!r} (fingerprint {i.fingerprint}): load the log's model"
        )
    want = (log.steps, log.in_flight, log.precision, log.prior_level, log.pixel_history)
    have = (i.steps, i.in_flight, i.precision, i.prior_level, i.pixel_history)
    if have != want or log.palette != i.palette:
        raise LogError(
            f"the log was played with steps={log.steps}, in_flight={log.in_flight}, precision="
            f"{log.precision}, prior_level={log.prior_level:g}, pixel_history="
            f"{log.pixel_history}, palette={log.palette}; this session has steps={i.steps}, "
            f"in_flight={i.in_flight}, precision={i.precision}, prior_level={i.prior_level:g}, "
            f"pixel_history={i.pixel_history}, palette={i.palette}: open the session with the "
            f"log's settings"
        )


def replay(session: Session, log: ActionLog, *, until: int | None = None) -> Iterator[Chunk]:
    """Do the log's calls again on ``session`` and yield every chunk they make, in order (the
    reset's and each step's). With ``until``, stop after the step that returns that tick (the
    session is left there, ready to be played on).

    Raises:
        LogError: another model or sampler setting, or a load of a snapshot the log cannot find.
    """
    check_log_fits(session, log)
    slots: dict[str, Snapshot] = {}
    for n, event in enumerate(log.events):
        op = event["op"]
        if op == "reset":
            frames = log.start_frames.get(n)
            start = event["start"]
            yield session.reset(
                prompt=event["prompt"],
                seed=event["seed"],
                image=frames if start == "image" else None,
                video=frames if start == "video" else None,
            )
        elif op == "step":
            chunk = session.step(np.asarray(event["actions"]), prompt=event["prompt"])
            yield chunk
            if until is not None and chunk.tick >= until:
                return
        elif op == "prompt":
            session.set_prompt(event["prompt"])
        elif op == "save":
            slots[event["slot"]] = session.snapshot()
        elif op == "load":
            snap = slots.get(event["slot"])
            if snap is None:
                snap = _outside_snapshot(event)
            session.restore(snap)


def _outside_snapshot(event: dict[str, Any]) -> Snapshot:
    """A snapshot the log loaded but did not save: read back from its file, checked by hash."""
    path = Path(event["slot"])
    if not path.is_file():
        raise LogError(
            f"the log loads snapshot {path}, saved before the logged run, and the file is gone"
        )
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != event.get("sha256"):
        raise LogError(f"snapshot {path} has changed since the logged run loaded it")
    return Snapshot.from_bytes(data)
