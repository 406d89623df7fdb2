"""An engine thread steps the sessions whose steps are queued together in one ``step_many`` call
(the factory's, when it has one), keeps each session's jobs in order, answers each client on its
own (one's bad action fails only its step), and falls back to one at a time without it."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from typing import Any

import numpy as np
import zmq

from bridges.engine import Engine, Job, Result
from bridges.fake import FakeSession
from bridges.handlers import OPS, Context, Slot
from bridges.limits import ServerLimits
from bridges.wire import decode


class Factory:
    """Fake sessions; ``step_many`` steps them one by one and records each call's size."""

    def __init__(self, batched: bool = True, delay_s: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay_s = delay_s  # a batch's time, as a model's pass
        if not batched:
            self.step_many = None

    def __call__(self, options: dict[str, Any]) -> FakeSession:
        return FakeSession()

    def step_many(self, calls: list[tuple[Any, Any, Any]]) -> list[Any]:
        self.calls.append(len(calls))
        time.sleep(self.delay_s)
        out: list[Any] = []
        for session, action, prompt in calls:
            try:
                out.append(session.step(action, prompt=prompt))
            except Exception as exc:  # noqa: BLE001 (per call, as sdk.batch.step_together)
                out.append(exc)
        return out


def _engine(factory: Factory) -> Engine:
    ctx = Context(factory, ServerLimits(), None, "inproc://frames")
    return Engine(0, ctx, zmq_context=zmq.Context.instance(), wake_endpoint="inproc://wake",
                  results=queue.SimpleQueue(), ids=itertools.count(), depth=16)  # fmt: skip


def _slot(name: str) -> Slot:
    session = FakeSession()
    session.reset(seed=len(name))
    return Slot(name, name + "-obs", None, 0, 0.0, session=session)  # type: ignore[arg-type]


def _job(slot: Slot, kind: str, args: Any, msg_id: int) -> Job:
    return Job(OPS[kind], slot, args, kind, msg_id, envelope=None)


def _reply(result: Result) -> tuple[str, dict[str, Any]]:
    msg = decode([f if isinstance(f, bytes) else bytes(f) for f in result.reply])
    return msg.type, msg.body


def _run_all(engine: Engine, first: Job) -> list[Result]:
    """Run ``first`` and every job queued after it, as the engine thread would, then stop."""
    engine.jobs.put(None)
    results = engine.execute_ready(first)
    while (job := engine.next_job()) is not None:
        results += engine.execute_ready(job)
    return results


def test_queued_steps_of_other_sessions_join_one_call_and_keep_order() -> None:
    factory = Factory()
    engine = _engine(factory)
    a, b, c = _slot("a"), _slot("bb"), _slot("ccc")
    engine.jobs.put(_job(b, "step", ("left", None), 2))
    engine.jobs.put(_job(a, "set_prompt", "night", 3))  # a waits: its step below comes after
    engine.jobs.put(_job(a, "step", ("up", None), 4))
    engine.jobs.put(_job(c, "step", ("jump!", None), 5))  # a bad action: only c's step fails
    results = _run_all(engine, _job(a, "step", ("right", None), 1))
    assert factory.calls == [3]  # a, b and c in one call; a's second step waited
    assert [r.job.msg_id for r in results] == [1, 2, 5, 3, 4]
    kinds = [_reply(r)[0] for r in results]
    assert kinds == ["step", "step", "error", "set_prompt", "step"]
    assert _reply(results[2])[1]["code"] == "BAD_ACTION"
    assert [_reply(r)[1]["tick"] for r in results if _reply(r)[0] == "step"] == [1, 1, 2]
    assert results[0].publish is not None and results[2].publish is None


def test_a_sessions_second_queued_step_heads_the_next_batch() -> None:
    # two clients each with two steps queued: two calls of two, and the first batch's
    # replies go out before the second batch runs (one at a time, the first pair waited)
    factory = Factory()
    engine = _engine(factory)
    a, b = _slot("a"), _slot("bb")
    for job in (_job(b, "step", ("left", None), 2), _job(a, "step", ("up", None), 3),
                _job(b, "step", ("down", None), 4)):  # fmt: skip
        engine.jobs.put(job)
    first = engine.execute_ready(_job(a, "step", ("right", None), 1))
    assert [r.job.msg_id for r in first] == [1, 2]
    second = engine.execute_ready(engine.next_job())  # type: ignore[arg-type]
    assert [r.job.msg_id for r in second] == [3, 4]
    assert factory.calls == [2, 2]
    assert [_reply(r)[1]["tick"] for r in first + second] == [1, 1, 2, 2]


def test_batched_frames_equal_each_session_stepped_alone() -> None:
    together, alone = _engine(Factory()), _engine(Factory(batched=False))
    for engine in (together, alone):
        slots = [_slot("x" * (i + 1)) for i in range(3)]
        for i, s in enumerate(slots[1:]):
            engine.jobs.put(_job(s, "step", ("down", None), i + 2))
        results = engine.execute_ready(_job(slots[0], "step", ("right", "day"), 1))
        while not engine.jobs.empty():  # without step_many the rest wait their turn
            job = engine.jobs.get_nowait()
            assert job is not None
            results += engine.execute_ready(job)
        engine.frames = [r.reply[-1] for r in results]  # type: ignore[attr-defined]
    assert together.ctx.factory.calls == [3]  # type: ignore[attr-defined]
    for x, y in zip(together.frames, alone.frames, strict=True):  # type: ignore[attr-defined]
        assert np.array_equal(np.frombuffer(x, np.uint8), np.frombuffer(y, np.uint8))


def test_a_stop_drained_with_a_batch_ends_the_engine_after_it() -> None:
    engine = _engine(Factory())
    a, b = _slot("a"), _slot("b")
    engine.jobs.put(_job(b, "step", (None, None), 2))
    engine.jobs.put(None)
    assert len(engine.execute_ready(_job(a, "step", (None, None), 1))) == 2
    assert engine.stopping


def test_a_lockstep_client_whose_step_comes_just_after_the_batch_starts_joins_it() -> None:
    # a client sends its next step a moment after its reply, when a flooder's is already
    # queued: the engine waits a share of the last batch's time for it instead of running the
    # next batch without it (which made it wait a whole tick: twice its quiet round trip)
    factory = Factory(delay_s=0.2)
    engine = _engine(factory)
    a, b = _slot("a"), _slot("b")
    engine.jobs.put(_job(b, "step", (None, None), 2))
    engine.execute_ready(_job(a, "step", (None, None), 1))
    late = threading.Timer(0.01, lambda: engine.jobs.put(_job(b, "step", (None, None), 4)))
    late.start()
    engine.execute_ready(_job(a, "step", (None, None), 3))
    late.join()
    assert factory.calls == [2, 2]


def test_a_client_that_stops_stepping_delays_one_batch_by_at_most_the_grace() -> None:
    from bridges.engine import BATCH_GRACE

    factory = Factory(delay_s=0.2)
    engine = _engine(factory)
    a, b = _slot("a"), _slot("b")
    engine.jobs.put(_job(b, "step", (None, None), 2))
    engine.execute_ready(_job(a, "step", (None, None), 1))  # b steps no more
    waits = []
    for n in (3, 4):
        started = time.monotonic()
        engine.execute_ready(_job(a, "step", (None, None), n))
        waits.append(time.monotonic() - started)  # a alone: no step_many, no sleep
    assert factory.calls == [2]  # then a alone, without step_many
    assert 0.5 * BATCH_GRACE * 0.2 < waits[0] < BATCH_GRACE * 0.2 + 0.04  # waited for b once
    assert waits[1] < 0.5 * BATCH_GRACE * 0.2  # then no more


def test_a_factory_can_home_a_session_on_an_engine_thread() -> None:
    # sdk/cluster.py homes each session on its Ray actor's thread, so they batch
    from bridges.handlers import OPS as ops

    class Homed(Factory):
        def engine_for(self, session: FakeSession) -> int:
            return 5

    ctx = Context(Homed(), ServerLimits(engine_threads=3), None, "inproc://frames")
    slot = Slot("s", "s-obs", None, 0, 0.0)  # type: ignore[arg-type]
    assert ops["hello"].run is not None
    ops["hello"].run(ctx, slot, {})
    assert slot.session is not None and slot.worker == 5 % 3
    plain = Slot("t", "t-obs", None, 1, 0.0)  # type: ignore[arg-type]
    ops["hello"].run(Context(Factory(), ServerLimits(engine_threads=3), None, "x"), plain, {})
    assert plain.worker == 1  # without engine_for a session stays where it was dealt
