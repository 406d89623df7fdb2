"""Sessions on Ray actors behind one bridge endpoint (sdk/cluster.py): a local Ray cluster with
two worker actors on this machine. Skipped where ray is not installed (the dev extra has it)."""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest
import torch

from bridges.client import RemoteError, connect
from bridges.limits import ServerLimits
from bridges.testing import local_server
from sdk.cli import build_parser
from sdk.cluster import RayWorlds, WorkerLostError, serve_factory
from sdk.session import Session

SETTINGS = {"model": "tiny", "precision": "fp32"}


def test_without_ray_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'chunkworld\[cluster\]'"):
        RayWorlds(SETTINGS)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    saved = os.environ.get("RAY_USAGE_STATS_ENABLED")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # a test cluster reports nothing anywhere
    ray.init(
        num_cpus=2,  # two actors of one CPU each
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 1024 * 1024,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        if saved is None:
            del os.environ["RAY_USAGE_STATS_ENABLED"]
        else:
            os.environ["RAY_USAGE_STATS_ENABLED"] = saved


@pytest.fixture
def worlds(ray_cluster):
    pool = RayWorlds(SETTINGS, workers=2, threads=1)
    try:
        yield pool
    finally:
        pool.shutdown()


def _reference(seed: int) -> list[np.ndarray]:
    """What a local session gives (one thread, like the actors)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with Session.load("tiny", seed=seed, precision="fp32") as s:
            return [s.reset(prompt="night").frames, s.step("right").frames, s.step(0).frames]
    finally:
        torch.set_num_threads(threads)


def test_sessions_spread_over_two_actors_and_survive_one_of_them(worlds):
    assert [w["alive"] for w in worlds.placement()] == [True, True]
    assert len({w["pid"] for w in worlds.placement()}) == 2  # two processes
    # one endpoint; more engine threads than actors, so sessions on both step at once
    with local_server(worlds, limits=ServerLimits(engine_threads=4)) as server:
        sessions, homes = [], []
        for seed in range(4):
            before = [w["sessions"] for w in worlds.placement()]
            sessions.append(connect(server.control_endpoint, seed=seed))
            after = [w["sessions"] for w in worlds.placement()]
            homes.append([a - b for a, b in zip(after, before, strict=True)].index(1))
        try:
            assert homes == [0, 1, 0, 1]  # the least-loaded actor each time
            assert [w["sessions"] for w in worlds.placement()] == [2, 2]
            # clients see what a local session gives, frame for frame
            got = [sessions[2].reset(prompt="night").frames, sessions[2].step("right").frames,
                   sessions[2].step(0).frames]  # fmt: skip
            assert all(np.array_equal(a, b) for a, b in zip(got, _reference(2), strict=True))
            for s in sessions:
                assert s.reset(prompt="day").tick == 0 and s.step("left").tick == 1
            snap = sessions[1].snapshot()  # state calls cross to the actor and back
            first = sessions[1].step("up").frames
            sessions[1].restore(snap)
            assert np.array_equal(sessions[1].step("up").frames, first)
            with pytest.raises(RemoteError) as bad:  # the session's own typed errors pass through
                sessions[3].step("fly")
            assert bad.value.code == "BAD_ACTION"

            os.kill(worlds.placement()[0]["pid"], signal.SIGKILL)  # actor 0 dies
            for s in (sessions[0], sessions[2]):
                with pytest.raises(RemoteError) as lost:
                    s.step("left")
                assert lost.value.code == "WORKER_LOST" and not lost.value.retryable
                assert "send hello for a new session" in lost.value.message
            assert [w["alive"] for w in worlds.placement()] == [False, True]
            assert sessions[1].step("right").tick == 3  # the survivor's sessions go on
            assert sessions[3].step("right").tick == 2
            new = connect(server.control_endpoint, seed=9)  # lands on the survivor
            sessions.append(new)
            assert [w["sessions"] for w in worlds.placement()][1] == 3
            assert new.reset().tick == 0 and new.step("right").tick == 1

            os.kill(worlds.placement()[1]["pid"], signal.SIGKILL)  # and then the other one
            with pytest.raises(RemoteError) as none_left:
                connect(server.control_endpoint)
            assert none_left.value.code == "WORKER_LOST"
            assert "no Ray worker of this server is alive" in none_left.value.message
        finally:
            for s in sessions:
                s.close()
    assert [w["sessions"] for w in worlds.placement()] == [0, 0]  # every close counted
    with pytest.raises(WorkerLostError):  # the factory itself, as the server calls it
        worlds({})


def assert_close(a: np.ndarray, b: np.ndarray, where: str) -> None:
    """tests/test_batch.py's tolerance: a batched frame is within one level of the frame alone
    in at most 0.1% of its values (CPU kernels at batch B do not always give batch 1's bits)."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    assert diff.max() <= 1 and np.mean(diff > 0) <= 1e-3, (where, diff.max(), np.mean(diff > 0))


def test_an_actors_sessions_step_together_and_a_lost_actor_fails_only_its_own(worlds):
    sessions = [worlds({"seed": seed}) for seed in range(4)]  # actors 0, 1, 0, 1
    try:
        assert [worlds.engine_for(s) for s in sessions] == [0, 1, 0, 1]
        for s in sessions:
            s.reset(prompt="night")
        chunks = worlds.step_many([(s, "right", None) for s in sessions])
        assert [c.tick for c in chunks] == [1, 1, 1, 1]
        sizes = [worlds._ray.get(w.actor.batch_sizes.remote()) for w in worlds.workers]
        assert sizes == [[2], [2]]  # one pass per actor, both actors at once
        assert_close(chunks[2].frames, _reference(2)[1], "batched on its actor")
        bad = worlds.step_many([(sessions[0], "fly", None), (sessions[2], 0, None)])
        assert getattr(bad[0], "code", None) == "BAD_ACTION" and bad[1].tick == 2
        os.kill(worlds.placement()[1]["pid"], signal.SIGKILL)
        mixed = worlds.step_many([(s, "left", None) for s in sessions])
        assert [getattr(c, "code", None) for c in mixed] == [
            None,
            "WORKER_LOST",
            None,
            "WORKER_LOST",
        ]
        assert [c.tick for c in mixed[::2]] == [2, 3]
    finally:
        for s in sessions:
            s.close()


def test_serve_ray_builds_the_factory_from_its_flags(ray_cluster):
    args = build_parser().parse_args(["serve", "--model", "tiny", "--ray", "--ray-workers", "1"])
    assert args.ray == "" and build_parser().parse_args(["serve"]).ray is None
    assert build_parser().parse_args(["serve", "--ray", "auto"]).ray == "auto"
    pool = serve_factory(args)  # Ray is up in this process: the factory joins it
    try:
        assert [w["alive"] for w in pool.placement()] == [True]
        assert pool.option_bounds == {"seed": (0, 2**63 - 1), "steps": (1, 64), "in_flight": (1, 8)}
        with pytest.raises(ValueError, match="unknown session options"):  # checked on the actor
            pool({"colour": 1})
        assert pool.placement()[0]["sessions"] == 0
    finally:
        pool.shutdown()
    assert ray_cluster.is_initialized()  # not its Ray to stop
