"""Mutations of the SDK's files, and what loading each one must do.

Three kinds of file, each built valid from the ``tiny`` model and then mutated:

- ``config``: a checkpoint's ``config.json`` (a field dropped, retyped or put out of range, or
  the text truncated or hit with garbage bytes), loaded with ``Session.load(dir)``;
- ``weights``: a checkpoint's ``model.safetensors``, its header or its bytes hit with garbage or
  truncated, loaded with ``Session.load(dir)``;
- ``snapshot``: a snapshot file's bytes, truncated or hit with garbage bytes, loaded with
  ``Snapshot.load`` and restored;
- ``metadata``: a snapshot's JSON document with a field dropped, retyped or out of range, sealed
  again as a careless writer would (so the check is on the fields, not only on the seal);
- ``log``: a ``chunkworld play`` action log (JSON) with a field dropped, retyped or out of range,
  loaded with ``ActionLog.load`` and replayed.

A mutation may give a typed error (a ``ChunkworldError`` whose message names the file) or a
correct load: a config that loads and plays (and, for a retyped or out-of-range field, is the
original config), a snapshot that steps exactly like the original. Anything else misbehaves:
a raw exception, an error without the file's name, a load that breaks later, a session left
changed by a refused restore, a malformed file accepted, or a hang. ``python -m
tests.file_mutations N`` counts the misbehaving ones of N mutations of each kind.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import sdk.snapshot as snapshot_module
from sdk import ChunkworldError, Session, Snapshot
from sdk.play.log import ActionLog, LoggedSession, replay
from world.core.checkpoint import save_checkpoint
from world.core.config import PRESETS
from world.core.model import WorldModel

RETYPED: list[Any] = ["x", "", 1.5, None, [], {}, True, 7, [1, "a"]]
OUT_OF_RANGE: list[Any] = [-1, -(10**9), 2**64, float("nan"), float("inf"), 2**70]
KINDS = ("config", "weights", "snapshot", "metadata", "log")
HANG_S = 30


class Misbehaved(AssertionError):
    """What a mutation did that no file may make the SDK do."""


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path (keys and list indices) to a value inside ``doc``, containers included."""
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    )
    for key, value in items:
        yield (*prefix, key)
        yield from paths(value, (*prefix, key))


def mutate_doc(doc: Any, rng: random.Random) -> tuple[str, Any]:
    """A copy of ``doc`` with one field dropped, retyped or put out of range."""
    doc = copy.deepcopy(doc)
    path = rng.choice(list(paths(doc)))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    op = rng.choice(["drop", "retype", "range"])
    old = parent[path[-1]]
    if op == "drop":
        del parent[path[-1]]
    else:
        new = rng.choice(RETYPED if op == "retype" else OUT_OF_RANGE)
        parent[path[-1]] = new
        # a value of the field's own type (7 for 1.0, "x" for "left"), None for a logged step's
        # prompt, which is nullable text (None: no new caption), or no events for a log's
        # events (an empty run)
        step_prompt = (
            path[-1] == "prompt" and isinstance(parent, dict) and parent.get("op") == "step"
        )
        valid = (step_prompt and new is None) or (path == ("events",) and new == [])
        if op == "retype" and (_same_kind(old, new) or valid):
            op = "revalue"
    return f"{op} {'.'.join(map(str, path))}", doc


def _same_kind(old: Any, new: Any) -> bool:
    if old is None:  # a nullable text field (a step's prompt): a string is a valid value
        return isinstance(new, str)
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is type(new)
    if isinstance(old, float):
        return isinstance(new, (int, float))
    return type(old) is type(new) and not isinstance(old, (list, dict))


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """``data`` truncated, or with a few bytes overwritten or inserted."""
    op = rng.choice(["truncate", "garbage", "insert"])
    if op == "truncate":
        at = rng.randrange(len(data))
        return f"truncate at {at}", data[:at]
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(out))
        if op == "garbage":
            out[at] = rng.randrange(256)
        else:
            out[at:at] = bytes([rng.randrange(256)])
    return op, bytes(out)


def _alarm(signum: int, frame: Any) -> None:
    raise Misbehaved(f"hung past {HANG_S} s")


class Bench:
    """The valid files and the reference results mutations are judged against."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.model_dir = save_checkpoint(WorldModel(PRESETS["tiny"]), root / "model")
        self.config = json.loads((self.model_dir / "config.json").read_text())
        self.session = Session.load(self.model_dir, in_flight=2, seed=3)
        s = self.session
        s.reset(seed=5)
        s.step("left")
        self.before = s.snapshot()  # the state a refused restore must leave
        s.step("up")
        s.step("fire")
        self.valid = s.snapshot().to_bytes()
        self.want = self._play()  # what the valid snapshot steps to
        s.restore(self.before)
        self.want_before = self._play()
        run = LoggedSession(s)
        run.reset(prompt="night", seed=3)
        run.step("right")
        run.set_prompt("rain")
        run.step([1, 5], prompt="day")
        self.log = run.log
        self.log_doc = json.loads(run.log.save(root / "valid.log.json").read_text())

    def _play(self) -> list[tuple[int, bytes]]:
        out = []
        for action in ("right", "down"):
            chunk = self.session.step(action)
            out.append((chunk.tick, np.ascontiguousarray(chunk.frames).tobytes()))
        return out

    # --- the three kinds -----------------------------------------------------------------------
    def mutant(self, kind: str, rng: random.Random) -> tuple[str, bytes]:
        if kind == "config":
            if rng.random() < 0.75:
                what, doc = mutate_doc(self.config, rng)
                return what, json.dumps(doc).encode()
            return mutate_bytes(json.dumps(self.config, indent=1).encode(), rng)
        if kind == "weights":  # the safetensors header: tensor names, dtypes, shapes, offsets
            data = (self.model_dir / "model.safetensors").read_bytes()
            head = 8 + int.from_bytes(data[:8], "little")
            if rng.random() < 0.5:
                what, mutated = mutate_bytes(data[:head], rng)
                return "header " + what, mutated + data[head:]
            return (
                mutate_bytes(data, rng)
                if rng.random() < 0.5
                else ("truncate", data[: rng.randrange(len(data))])
            )
        if kind == "snapshot":
            return mutate_bytes(self.valid, rng)
        if kind == "log":
            what, doc = mutate_doc(self.log_doc, rng)
            return what, json.dumps(doc).encode()
        tensors = st_load(self.valid)
        meta = Snapshot.from_bytes(self.valid).meta()
        what, doc = mutate_doc(meta, rng)
        seal = getattr(snapshot_module, "seal", None)
        if seal is not None and isinstance(doc, dict):
            doc = seal(doc, tensors)
        return what, st_save(tensors, metadata={"chunkworld": json.dumps(doc)})

    def judge(self, kind: str, what: str, data: bytes) -> str:
        """``"refused"`` or ``"loaded"``; raises Misbehaved for anything else."""
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(HANG_S)
        try:
            if kind == "config":
                return self._judge_config(what, data)
            if kind == "weights":
                return self._judge_weights(data)
            if kind == "log":
                return self._judge_log(what, data)
            return self._judge_snapshot(data)
        except Misbehaved:
            raise
        except Exception as e:  # the point: anything untyped is a finding
            raise Misbehaved(f"raw {type(e).__name__}: {e}") from e
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)

    def _judge_config(self, what: str, data: bytes) -> str:
        work = self.root / "mutant"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        (work / "config.json").write_bytes(data)
        (work / "model.safetensors").symlink_to(self.model_dir / "model.safetensors")
        try:
            s = Session.load(work)
        except ChunkworldError as e:
            if "config.json" not in str(e) and "model.safetensors" not in str(e):
                raise Misbehaved(f"typed error without the file's name: {e}") from e
            return "refused"
        with s:
            try:
                s.reset(seed=1)
                s.step(1)  # by id: a mutation may rename an action
                s.step(len(s.info.actions) - 1)
            except Exception as e:
                raise Misbehaved(f"loaded, then broke: {type(e).__name__}: {e}") from e
            changed = s._loaded.model.cfg != self.session._loaded.model.cfg
            if what.startswith(("retype", "range")) and changed:
                raise Misbehaved(f"malformed value accepted: {s._loaded.model.cfg}")
        return "loaded"

    def _judge_weights(self, data: bytes) -> str:
        """Damaged weights: a typed error naming the file, or a model that loads and plays (a
        byte changed inside a tensor's data is a model with other weights, not detectable)."""
        work = self.root / "mutant"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        shutil.copy(self.model_dir / "config.json", work / "config.json")
        (work / "model.safetensors").write_bytes(data)
        try:
            s = Session.load(work)
        except ChunkworldError as e:
            if "model.safetensors" not in str(e) and "config.json" not in str(e):
                raise Misbehaved(f"typed error without the file's name: {e}") from e
            return "refused"
        with s:
            try:
                s.reset(seed=1)
                s.step(1)
            except Exception as e:
                raise Misbehaved(f"loaded, then broke: {type(e).__name__}: {e}") from e
        return "loaded"

    def _judge_log(self, what: str, data: bytes) -> str:
        """A typed error naming the file, or a log that replays: the original one where a field
        was retyped or put out of range (a dropped optional field or a new value of the right
        type may replay differently, or be refused by the replay with a typed error)."""
        path = self.root / "mutant.log.json"
        path.write_bytes(data)
        try:
            log = ActionLog.load(path)
        except ChunkworldError as e:
            if path.name not in str(e):
                raise Misbehaved(f"typed error without the file's name: {e}") from e
            return "refused"
        same = (log.events, log.fingerprint, log.steps) == (
            self.log.events,
            self.log.fingerprint,
            self.log.steps,
        )
        if what.startswith(("retype", "range")) and not same:
            raise Misbehaved(f"malformed value accepted: {what}")
        try:
            list(replay(self.session, log))
        except ChunkworldError:
            return "refused"
        except Exception as e:
            raise Misbehaved(f"loaded, then replay broke: {type(e).__name__}: {e}") from e
        return "loaded"

    def _judge_snapshot(self, data: bytes) -> str:
        path = self.root / "mutant.snapshot.safetensors"
        path.write_bytes(data)
        s = self.session
        s.restore(self.before)
        try:
            s.restore(Snapshot.load(path))
        except ChunkworldError as e:
            if path.name not in str(e):
                raise Misbehaved(f"typed error without the file's name: {e}") from e
            if self._play() != self.want_before:
                raise Misbehaved("a refused restore changed the session") from e
            return "refused"
        try:
            got = self._play()
        except Exception as e:
            raise Misbehaved(f"restored, then broke: {type(e).__name__}: {e}") from e
        if got != self.want:
            raise Misbehaved("restored to a state that steps unlike the original")
        return "loaded"


def count(n: int, seed: int = 0) -> dict[str, dict[str, int]]:
    """Run ``n`` mutations of each kind; counts of refused, loaded and misbehaved, and prints
    each misbehaving one."""
    out: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp))
        for kind in KINDS:
            tally = {"refused": 0, "loaded": 0, "misbehaved": 0}
            rng = random.Random(f"{seed}-{kind}")
            for _ in range(n):
                what, data = bench.mutant(kind, rng)
                try:
                    tally[bench.judge(kind, what, data)] += 1
                except Misbehaved as e:
                    tally["misbehaved"] += 1
                    print(f"{kind}: {what}: {str(e)[:160]}", file=sys.stderr)
            out[kind] = tally
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    for kind, tally in count(n).items():
        print(kind, tally)
