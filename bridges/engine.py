"""Engine threads of the bridge server: they call sessions; nothing else does.

The socket thread puts a `Job` on an engine's bounded queue; the engine runs it, encodes the
reply (and the chunk to publish) off the socket thread, puts a `Result` on a shared queue and
sends an empty wake-up message on an inproc PUSH socket. With one engine thread (the default),
one thread owns the model.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import zmq

from bridges.handlers import Connection, Context, Op, Outcome, Slot, chunk_outcome
from bridges.session_api import SESSION_ERROR_CODES
from bridges.wire import WireError, encode, error_body

log = logging.getLogger(__name__)

# how long a batched step waits for the last batch's other sessions, as a share of that
# batch's time (see `Engine.execute_ready`)
BATCH_GRACE = 0.25


@dataclass
class Job:
    op: Op
    slot: Slot
    args: Any  # what op.check returned
    msg_type: str
    msg_id: int
    envelope: list[bytes] | None  # routing frames; None: nobody waits (idle expiry, shutdown)
    key: tuple[Any, ...] = ()  # the reply cache key
    conn: Connection | None = None  # the connection that sent it


@dataclass
class Result:
    job: Job
    reply: list[Any]  # encoded frames, without the envelope
    publish: list[Any] | None  # [topic, *frames] for the PUB socket
    drop_slot: bool
    cacheable: bool  # retryable errors are not cached: a resend should try again


def error_code(exc: BaseException) -> tuple[str, str, bool]:
    """Map an exception from a check or a session call to (code, message, retryable)."""
    if isinstance(exc, WireError):
        return exc.code, exc.message, exc.retryable
    code = getattr(exc, "code", None)
    if code == "BAD_REQUEST":  # bad hello options, whatever the factory raised
        return code, str(exc), False
    if isinstance(code, str) and code in SESSION_ERROR_CODES:
        return code, str(exc), False
    if isinstance(exc, ValueError | TypeError):
        return "BAD_REQUEST", str(exc), False
    log.error("session call failed", exc_info=exc)
    return "INTERNAL", f"{type(exc).__name__}: {exc}"[:500], False


def reply_frames(ids: itertools.count[int], msg_type: str, re: int, sid: str | None,
                 outcome: Outcome) -> list[Any]:  # fmt: skip
    """Encode a reply; the server's message counter gives both its id and seq."""
    n = next(ids)
    return encode(msg_type, id=n, re=re, session=sid, seq=n, time=time.time(),
                  body=outcome.body, arrays=outcome.arrays)  # fmt: skip


class Engine(threading.Thread):
    """One engine thread: runs the calls of the sessions pinned to it, one at a time."""

    def __init__(
        self,
        index: int,
        ctx: Context,
        *,
        zmq_context: zmq.Context[Any],
        wake_endpoint: str,
        results: queue.SimpleQueue[Result],
        ids: itertools.count[int],
        depth: int,
    ) -> None:
        super().__init__(name=f"bridge-engine-{index}", daemon=True)
        self.ctx, self.results, self.ids = ctx, results, ids
        self._zmq, self._wake_endpoint = zmq_context, wake_endpoint
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=depth)  # None: stop
        self._last_batch: list[Slot] = []  # the sessions the last batched step ran
        self._last_batch_s = 0.0  # and how long it took
        self._carried: collections.deque[Job] = collections.deque()  # drained, not yet run

    def run(self) -> None:
        wake = self._zmq.socket(zmq.PUSH)
        wake.connect(self._wake_endpoint)
        try:
            while (job := self.next_job()) is not None:
                for result in self.execute_ready(job):
                    self.results.put(result)
                    try:
                        wake.send(b"", zmq.NOBLOCK)
                    except zmq.Again:
                        pass  # the socket thread drains results on its next poll anyway
        finally:
            wake.close(linger=0)

    stopping = False  # a stop (None) was drained with a batch: finish it, then stop

    def next_job(self) -> Job | None:
        """The next job to run: those a batch drained but left out first, in queue order."""
        if self._carried:
            return self._carried.popleft()
        return None if self.stopping else self.jobs.get()

    def _pull(self, timeout: float) -> Job | None:
        """The next drained-but-not-run job, else one from the queue (raises `queue.Empty`)."""
        if self._carried:
            return self._carried.popleft()
        return self.jobs.get(timeout=timeout) if timeout > 0 else self.jobs.get_nowait()

    def execute_ready(self, job: Job) -> list[Result]:
        """Run ``job``; if it is a step and the factory can step many sessions in one pass
        (``step_many``, bridges/session_api.py), the steps of other sessions already queued
        join it, and so do those of the last batch's sessions that arrive within
        ``BATCH_GRACE`` of the last batch's time. Other drained jobs, and any later job of a
        session already in the batch, are carried: they come next, in queue order, so a
        session's second queued step heads the next batch rather than running alone while
        the other sessions wait for their replies.

        Why the grace: a client stepping in lockstep sends its next step a millisecond after
        its reply, while a client that floods already has one queued. Without a wait, each
        batch started without the lockstep client, which then waited a whole tick for the
        next: twice its quiet round trip (docs/many-worlds.md). A client that stops stepping
        costs the batch after its last at most the grace, once."""
        step_many = getattr(self.ctx.factory, "step_many", None)
        if step_many is None or job.msg_type != "step" or job.slot.session is None:
            return [self.execute(job)]
        batch: list[Job] = [job]
        later: list[Job] = []
        expected = {id(s) for s in self._last_batch if s is not job.slot and s.session is not None}
        until = time.monotonic() + BATCH_GRACE * self._last_batch_s
        while True:
            try:
                left = until - time.monotonic() if expected else 0.0
                nxt = self._pull(left)
            except queue.Empty:
                break
            if nxt is None:
                self.stopping = True
                break
            waiting = any(j.slot is nxt.slot for j in later) or any(
                j.slot is nxt.slot for j in batch
            )
            if nxt.msg_type == "step" and nxt.slot.session is not None and not waiting:
                batch.append(nxt)
                expected.discard(id(nxt.slot))
            else:
                later.append(nxt)
        started = time.monotonic()
        results = self.execute_steps(batch, step_many) if len(batch) > 1 else [self.execute(job)]
        self._last_batch, self._last_batch_s = [j.slot for j in batch], time.monotonic() - started
        self._carried.extendleft(reversed(later))
        return results

    def execute_steps(self, batch: list[Job], step_many: Any) -> list[Result]:
        """Step the jobs' sessions in one ``step_many`` call; each gets its own reply."""
        calls = [(j.slot.session, *j.args) for j in batch]
        try:
            chunks = list(step_many(calls))
            assert len(chunks) == len(batch), "step_many returned a result per call"
        except Exception as exc:  # the batch path failed as a whole: each alone instead
            log.error("step_many failed; stepping one at a time", exc_info=exc)
            return [self.execute(j) for j in batch]
        return [self.execute(j, done=c) for j, c in zip(batch, chunks, strict=True)]

    def execute(self, job: Job, *, done: Any = None) -> Result:
        """Run one job (or take ``done``, its session call's result or exception, from a batch);
        every failure becomes an error reply and the engine lives on."""
        slot = job.slot
        assert job.op.run is not None
        try:
            if done is None:
                outcome = job.op.run(self.ctx, slot, job.args)
            elif isinstance(done, BaseException):
                raise done
            else:
                outcome = chunk_outcome(done)
        except Exception as exc:
            code, message, retryable = error_code(exc)
            outcome = Outcome(error_body(code, message, retryable))
            reply = reply_frames(self.ids, "error", job.msg_id, slot.sid, outcome)
            # a session that never started is forgotten
            return Result(job, reply, None, job.msg_type == "hello", not retryable)
        publish = None
        if outcome.publish:
            body = {**outcome.body, "cause": job.msg_type}
            # published under the observer token; the session token never leaves its owner
            chunk = encode("chunk", id=next(self.ids), session=slot.observer, seq=slot.chunk_seq,
                           time=time.time(), body=body, arrays=outcome.arrays)  # fmt: skip
            publish = [slot.observer.encode(), *chunk]
            slot.chunk_seq += 1
        reply = reply_frames(self.ids, job.msg_type, job.msg_id, slot.sid, outcome)
        return Result(job, reply, publish, outcome.drop_slot, True)
