"""Sessions hosted on Ray actors: one bridge endpoint for the worlds of every machine of a Ray
cluster (``pip install chunkworld[cluster]``; ``chunkworld serve --ray``).

:class:`RayWorlds` is a session factory for :class:`bridges.server.Server`, the interface the
server already reaches sessions through: each ``hello`` makes a :class:`RaySession`, a proxy
that forwards every call to a :class:`WorldHost` actor. Each actor loads the model once and
holds many sessions (made by ``sdk.cli_serve.session_factory``, as a local ``chunkworld serve``
makes them), running their calls one at a time, as one engine thread owns the model on one
machine; the steps of an actor's sessions that arrive together run in one forward pass
(``step_many``: the server gives each actor an engine thread, ``engine_for``). A new session
goes to the live actor with the fewest sessions; actors are spread over the cluster's nodes. Clients see the same protocol and the same frames as from a local server.

An actor that dies (its process killed, its machine gone) takes its sessions with it: their next
call, and every call after, fails with :class:`WorkerLostError` (code ``WORKER_LOST``, which the
bridge passes to the client); new sessions go to the actors still alive. Dead actors are not
restarted: a session's state lives in its actor's memory only.

``ray`` is imported only when a :class:`RayWorlds` is made, so the SDK works without it.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import pickle
import socket
import threading
from dataclasses import dataclass
from typing import Any

from sdk.errors import ChunkworldError, ClosedError

INSTALL_HINT = "install the cluster extra: pip install 'chunkworld[cluster]'"
CLOSED = "the session was closed; send hello for a new one"
CALLS = frozenset({"reset", "step", "set_prompt", "snapshot", "restore", "close"})
# what WorldHost takes from `chunkworld serve`'s arguments to make sessions
# (sdk.cli_serve.session_factory)
SETTINGS = (
    "model",
    "device",
    "steps",
    "in_flight",
    "precision",
    "prior_level",
    "pixel_history",
    "palette",
)


class WorkerLostError(ChunkworldError, RuntimeError):
    """The Ray actor that held a session is gone; the session's state went with it. Open a new
    session (``hello``): it goes to an actor still alive."""

    code = "WORKER_LOST"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError(f"serving on Ray needs the ray package: {INSTALL_HINT}") from None
    return ray


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling (it crosses from the actor to the server), else a
    ``RuntimeError`` of its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


class WorldHost:
    """One Ray actor's state: one model, the sessions made on it by id. Ray calls its methods
    one at a time (the actor's default), so one thread owns the model. Failures of a call come
    back as values (``("err", exc)``), so the server re-raises the session's own typed error."""

    def __init__(self, settings: dict[str, Any], threads: int | None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        from sdk.cli_serve import session_factory

        self.factory = session_factory(argparse.Namespace(**settings))
        self.sessions: dict[int, Any] = {}
        self.ids = itertools.count()
        self.batches: collections.deque[int] = collections.deque(
            maxlen=256
        )  # bounded: actors live long

    def ready(self) -> dict[str, Any]:
        """Where this actor runs and the hello options its sessions take."""
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "option_bounds": dict(getattr(self.factory, "option_bounds", {})),
        }

    def open(self, options: dict[str, Any]) -> tuple[str, Any]:
        try:
            session = self.factory(options)
            facts = session.describe()
        except Exception as exc:
            return "err", _portable(exc)
        sid = next(self.ids)
        self.sessions[sid] = session
        return "ok", (sid, facts)

    def call(self, sid: int, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        session = self.sessions.get(sid)
        if session is None or method not in CALLS:
            return "err", ClosedError(CLOSED)
        try:
            result = getattr(session, method)(*args, **kwargs)
        except Exception as exc:
            return "err", _portable(exc)
        finally:
            if method == "close":
                self.sessions.pop(sid, None)
        return "ok", result

    def step_many(self, calls: list[tuple[int, Any, str | None]]) -> list[tuple[str, Any]]:
        """Step several of this actor's sessions, in one forward pass when the factory can
        (``step_many``, as a local ``chunkworld serve``); one ``("ok", chunk)`` or
        ``("err", exc)`` per call, in order."""
        self.batches.append(len(calls))
        found = [self.sessions.get(sid) for sid, _, _ in calls]
        live = [(s, a, p) for s, (_, a, p) in zip(found, calls, strict=True) if s is not None]
        step_many = getattr(self.factory, "step_many", None)
        if step_many is not None and len(live) > 1:
            done = iter(step_many(live))
        else:
            done = iter(_one(s, a, p) for s, a, p in live)
        out: list[tuple[str, Any]] = []
        for session in found:
            if session is None:
                out.append(("err", ClosedError(CLOSED)))
                continue
            result = next(done)
            out.append(
                ("err", _portable(result)) if isinstance(result, Exception) else ("ok", result)
            )
        return out

    def count(self) -> int:
        return len(self.sessions)

    def batch_sizes(self) -> list[int]:
        """The sizes of the last 256 ``step_many`` calls (the tests read them)."""
        return list(self.batches)


def _one(session: Any, action: Any, prompt: str | None) -> Any:
    """One session's step: its chunk, or the exception it raised."""
    try:
        return session.step(action, prompt=prompt)
    except Exception as exc:
        return exc


@dataclass
class Worker:
    """The server's record of one actor."""

    index: int
    actor: Any
    host: str = ""
    pid: int = 0
    alive: bool = True
    sessions: int = 0  # live sessions placed on it (reserved as a hello starts)


class RayWorlds:
    """A session factory whose sessions live on Ray actors (see the module's doc).

    Args:
        settings: ``model``, ``device``, ``steps``, ``in_flight``, ``precision``,
            ``prior_level``, ``pixel_history``, ``palette`` as ``chunkworld serve`` takes them (``None``: the model's).
        workers: actors to start (each loads the model once); ``None``: one per alive node.
        threads: torch threads of each actor, and the CPUs Ray reserves for it; ``None``:
            torch's default, 1 CPU reserved.
        address: the Ray cluster to join (``"auto"``: the one running on this machine,
            ``"HOST:PORT"``); ``None``: ``RAY_ADDRESS`` if set, else a Ray started here. Unused
            if Ray is already initialised in this process.
        start_timeout_s: how long the actors may take to start and load the model.
        ray_options: more keyword arguments for ``ray.init``.

    Raises:
        ImportError: ray is not installed (the message says how to install it).
        RuntimeError: the actors did not start (too few CPUs in the cluster, a model they could
            not load); the message says which and what to change.
    """

    def __init__(
        self,
        settings: dict[str, Any],
        *,
        workers: int | None = None,
        threads: int | None = None,
        address: str | None = None,
        start_timeout_s: float = 300.0,
        ray_options: dict[str, Any] | None = None,
    ) -> None:
        ray = self._ray = _ray()
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise ValueError(f"unknown settings {unknown}; RayWorlds takes {list(SETTINGS)}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers={workers}: give at least 1 (or None: one per node)")
        if threads is not None and threads < 1:
            raise ValueError(f"threads={threads}: give at least 1 (or None: torch's default)")
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(address=address, **(ray_options or {}))
        count = workers or sum(1 for node in ray.nodes() if node.get("Alive"))
        host = ray.remote(WorldHost).options(
            num_cpus=threads or 1, max_restarts=0, scheduling_strategy="SPREAD"
        )
        full = {name: settings.get(name) for name in SETTINGS}
        full["device"] = full["device"] or "cpu"
        full["precision"] = full["precision"] or "auto"
        self.workers = [Worker(i, host.remote(full, threads)) for i in range(count)]
        self._lock = threading.Lock()
        try:
            facts = ray.get([w.actor.ready.remote() for w in self.workers], timeout=start_timeout_s)
        except Exception as exc:
            self.shutdown()
            cpus = ray.cluster_resources().get("CPU", 0) if ray.is_initialized() else "?"
            raise RuntimeError(
                f"{count} Ray workers of {threads or 1} CPU(s) each did not start in "
                f"{start_timeout_s:g} s (the cluster has {cpus} CPUs): give fewer workers or "
                f"threads, or check the model loads on every node ({type(exc).__name__}: "
                f"{str(exc)[:400]})"
            ) from None
        for worker, fact in zip(self.workers, facts, strict=True):
            worker.host, worker.pid = fact["host"], fact["pid"]
        self.option_bounds = facts[0]["option_bounds"]  # advertised in the hello reply

    def __call__(self, options: dict[str, Any]) -> RaySession:
        """A new session on the live actor with the fewest sessions (the lowest index on a tie);
        an actor found dead on the way is passed over.

        Raises:
            ValueError: bad ``options`` (the bridge answers BAD_REQUEST).
            WorkerLostError: no actor is alive.
        """
        tried: set[int] = set()
        while True:
            with self._lock:
                live = [w for w in self.workers if w.alive and w.index not in tried]
                if not live:
                    raise WorkerLostError(
                        "no Ray worker of this server is alive: restart chunkworld serve --ray"
                    )
                worker = min(live, key=lambda w: (w.sessions, w.index))
                worker.sessions += 1  # reserved now, so that hellos at once spread out
            try:
                sid, facts = self.ask(worker, worker.actor.open.remote(dict(options)))
            except WorkerLostError:
                self.release(worker)
                tried.add(worker.index)
                continue
            except BaseException:
                self.release(worker)
                raise
            return RaySession(self, worker, sid, facts)

    def engine_for(self, session: RaySession) -> int:
        """The bridge engine thread a session's calls run on: its actor's, so that the steps
        of one actor's sessions meet on one thread and go to the actor together
        (``step_many``). ``chunkworld serve --ray`` starts one engine thread per actor."""
        return session.worker.index

    def step_many(self, calls: list[tuple[RaySession, Any, str | None]]) -> list[Any]:
        """Step several sessions: one ``WorldHost.step_many`` call per actor (the actors run at
        once), each session's chunk or exception in the order of ``calls``."""
        out: list[Any] = [None] * len(calls)
        groups: dict[int, list[int]] = {}
        for i, (session, _, _) in enumerate(calls):
            if session._closed:
                out[i] = ClosedError(CLOSED)
            elif not session.worker.alive:
                out[i] = self.lost(session.worker)
            else:
                groups.setdefault(session.worker.index, []).append(i)
        refs = {
            w: self.workers[w].actor.step_many.remote(
                [(calls[i][0]._sid, calls[i][1], calls[i][2]) for i in idx]
            )
            for w, idx in groups.items()
        }
        for w, idx in groups.items():
            worker = self.workers[w]
            try:
                results = self._ray.get(refs[w])
            except self._ray.exceptions.RayActorError as exc:
                with self._lock:
                    worker.alive = False
                results = [("err", self.lost(worker, type(exc).__name__))] * len(idx)
            for i, (_, value) in zip(idx, results, strict=True):
                out[i] = value
        return out

    def ask(self, worker: Worker, ref: Any) -> Any:
        """The result of an actor call: its value, the session's own error raised, or
        :class:`WorkerLostError` if the actor is gone (marked dead from then on)."""
        try:
            status, value = self._ray.get(ref)
        except self._ray.exceptions.RayActorError as exc:
            with self._lock:
                worker.alive = False
            raise self.lost(worker, type(exc).__name__) from None
        if status == "err":
            raise value
        return value

    @staticmethod
    def lost(worker: Worker, why: str = "dead") -> WorkerLostError:
        return WorkerLostError(
            f"the Ray worker that held this session ({worker.host} pid {worker.pid}) is gone "
            f"({why}), and the session with it: send hello for a new session"
        )

    def release(self, worker: Worker) -> None:
        with self._lock:
            worker.sessions = max(0, worker.sessions - 1)

    def placement(self) -> list[dict[str, Any]]:
        """Each actor: index, host, pid, alive, sessions (as the server counts them)."""
        with self._lock:
            return [
                {"index": w.index, "host": w.host, "pid": w.pid, "alive": w.alive,
                 "sessions": w.sessions}
                for w in self.workers
            ]  # fmt: skip

    def shutdown(self) -> None:
        """Stop the actors (their sessions end), and Ray if this object started it. Safe twice."""
        for worker in self.workers:
            try:
                self._ray.kill(worker.actor)
            except Exception:
                pass  # already gone
            worker.alive = False
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()


class RaySession:
    """A session on a :class:`WorldHost` actor: ``bridges.session_api.SessionLike``, each call
    forwarded and its result (or the session's own typed error) returned."""

    def __init__(self, pool: RayWorlds, worker: Worker, sid: int, facts: dict[str, Any]) -> None:
        self._pool, self.worker, self._sid, self._facts = pool, worker, sid, facts
        self._closed = False

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if not self.worker.alive:  # found dead by another session's call: fail at once
            raise self._pool.lost(self.worker)
        ref = self.worker.actor.call.remote(self._sid, method, args, kwargs)
        return self._pool.ask(self.worker, ref)

    def describe(self) -> dict[str, Any]:
        return dict(self._facts)

    def reset(
        self,
        *,
        prompt: str | None = None,
        image: Any = None,
        video: Any = None,
        seed: int | None = None,
    ) -> Any:
        return self._call("reset", prompt=prompt, image=image, video=video, seed=seed)

    def step(self, action: Any = None, *, prompt: str | None = None) -> Any:
        return self._call("step", action, prompt=prompt)

    def set_prompt(self, prompt: str) -> None:
        self._call("set_prompt", prompt)

    def snapshot(self) -> Any:
        return self._call("snapshot")

    def restore(self, snapshot: Any) -> None:
        self._call("restore", snapshot)

    def close(self) -> None:
        """End the session on its actor; a session whose actor is gone just ends. Safe twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.worker.alive:
                self._call("close")
        except WorkerLostError:
            pass
        finally:
            self._pool.release(self.worker)


def serve_factory(args: argparse.Namespace) -> RayWorlds:
    """``chunkworld serve --ray [ADDRESS]``'s session factory, from its arguments."""
    settings = {name: getattr(args, name, None) for name in SETTINGS}
    address = args.ray or None  # "--ray" alone: RAY_ADDRESS, else a Ray started here
    return RayWorlds(settings, workers=args.ray_workers, threads=args.threads, address=address)
