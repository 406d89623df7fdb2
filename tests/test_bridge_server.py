"""The bridge server end to end with the fake session: happy path, exact bytes, sessions,
idempotent resends, BUSY, expiry, model failures, record, security and shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bridges import Client, RemoteError, ServerLimits, connect
from bridges.binding import is_loopback
from bridges.fake import FakeSession, MemoryRecordSink, fake_factory
from bridges.keys import generate_keys
from bridges.server import Server
from bridges.testing import RawPeer, local_server


def hello(peer: RawPeer, id: int = 1, **options: Any) -> str:
    reply = peer.call("hello", id, versions=[2], options=options)
    assert reply.type == "hello", reply.body
    return str(reply.body["session"])


def test_remote_session_gives_the_same_bytes_as_a_local_one() -> None:
    local = FakeSession()
    with local_server() as server, connect(server.control_endpoint, timeout_s=5) as remote:
        assert remote.describe() == local.describe()
        assert remote.limits["max_prompt_chars"] == 512  # min of server and session limits
        with remote.observe() as observer:
            time.sleep(0.2)  # let the subscription reach the PUB socket
            pairs = [(local.reset(seed=5, prompt="a cave"), remote.reset(seed=5, prompt="a cave"))]
            for action in ["left", 3, None, ["jump", 0, 1, 2]]:
                pairs.append((local.step(action), remote.step(action)))
            pairs.append((local.step(1, prompt="night"), remote.step(1, prompt="night")))
            for mine, theirs in pairs:
                assert (mine.tick, mine.action_tick) == (theirs.tick, theirs.action_tick)
                assert mine.frames.tobytes() == theirs.frames.tobytes()
            seen = [observer.recv(2.0) for _ in pairs]
        assert [c.tick for c in seen if c] == [c.tick for _, c in pairs]
        assert [c.seq for c in seen if c] == list(range(len(pairs)))
        snap = remote.snapshot()
        after = remote.step(2).frames
        remote.restore(snap)
        np.testing.assert_array_equal(remote.step(2).frames, after)


def test_resent_id_gets_the_cached_reply_and_steps_once() -> None:
    with local_server() as server, RawPeer(server.control_endpoint) as peer:
        sid = hello(peer)
        peer.call("reset", 2, sid)
        peer.send("step", 3, sid, action=1)
        first = peer.recv_raw()
        peer.send("step", 3, sid, action=1)  # a resend: same id
        assert peer.recv_raw() == first
        assert peer.call("step", 4, sid, action=1).body["tick"] == 2  # ticked once, not twice


def test_concurrent_step_on_one_session_is_busy_and_other_clients_go_on() -> None:
    with (
        local_server() as server,
        RawPeer(server.control_endpoint) as peer,
        RawPeer(server.control_endpoint) as other,
    ):
        sid = hello(peer, delay_s=0.5)
        peer.call("reset", 2, sid)
        peer.send("step", 3, sid)
        peer.send("step", 4, sid)
        busy = peer.recv()
        assert (busy.re, busy.body["code"], busy.body["retryable"]) == (4, "BUSY", True)
        assert other.call("ping", 1).type == "ping"  # not blocked by the slow step
        assert peer.recv().body["tick"] == 1
        assert peer.call("step", 4, sid).body["tick"] == 2  # BUSY was not cached


def test_model_failure_is_internal_and_the_server_lives_on() -> None:
    with local_server() as server, connect(server.control_endpoint, fail_at_tick=1) as session:
        session.reset()
        with pytest.raises(RemoteError) as info:
            session.step()
        assert (info.value.code, info.value.retryable) == ("INTERNAL", False)
        assert "MemoryError" in info.value.message
        with connect(server.control_endpoint, fail_at_tick=1, fail_with="runtime") as again:
            again.reset()
            with pytest.raises(RemoteError, match="INTERNAL"):
                again.step()
        with connect(server.control_endpoint) as fine:
            assert fine.reset().tick == 0 and fine.step().tick == 1


def test_session_errors_pass_through_with_their_codes() -> None:
    with local_server() as server, connect(server.control_endpoint) as session:
        cases = [
            (lambda: session.step(), "NOT_RESET"),
            (lambda: session.snapshot(), "NOT_RESET"),
            (lambda: session.restore("snap-99"), "BAD_SNAPSHOT"),
            (lambda: session.reset(image=np.zeros((8, 8, 3), np.uint8)), "BAD_IMAGE"),
            (
                lambda: session.reset(seed=2**62, prompt="x" * 513),
                "TOO_LARGE",
            ),  # over the advertised limit
        ]
        for call, code in cases:
            with pytest.raises(RemoteError) as info:
                call()
            assert info.value.code == code
        session.reset(video=np.zeros((3, 64, 64, 3), np.uint8))
        for action, code in [(7, "BAD_ACTION"), ("fly", "BAD_ACTION"), ([1, 2], "BAD_ACTION")]:
            with pytest.raises(RemoteError) as info:
                session.step(action)
            assert info.value.code == code
        assert session.step("right").tick == 1


def test_sessions_are_limited_per_connection_and_per_server() -> None:
    limits = ServerLimits(max_sessions_per_client=2, max_sessions=3)
    with (
        local_server(limits=limits) as server,
        RawPeer(server.control_endpoint) as a,
        RawPeer(server.control_endpoint) as b,
    ):
        sid = hello(a, 1)
        hello(a, 2)
        assert a.call("hello", 3).body["code"] == "LIMIT"
        assert b.call("reset", 1, "0" * len(sid)).body["code"] == "UNKNOWN_SESSION"  # a guess
        hello(b, 2)
        assert b.call("hello", 3).body == {
            "code": "LIMIT",
            "message": "the server has max_sessions sessions",
            "retryable": True,
        }
        assert a.call("close", 4, sid).type == "close"
        assert a.call("reset", 5, sid).body["code"] == "UNKNOWN_SESSION"
        hello(b, 4)


def test_idle_sessions_expire() -> None:
    made: list[FakeSession] = []

    def factory(options: dict[str, Any]) -> FakeSession:
        made.append(FakeSession())
        return made[-1]

    with (
        local_server(factory, limits=ServerLimits(idle_ttl_s=0.3)) as server,
        RawPeer(server.control_endpoint) as peer,
    ):
        sid = hello(peer)
        time.sleep(0.8)
        assert peer.call("reset", 2, sid).body["code"] == "UNKNOWN_SESSION"
        assert made[0].close_calls == 1


def test_record_lands_in_the_sink() -> None:
    sink = MemoryRecordSink()
    with local_server(record_sink=sink) as server, connect(server.control_endpoint) as session:
        frames = np.full((8, 64, 64, 3), 9, np.uint8)
        clip = session.record(frames, np.array([0, 1, 2, 3, 4, 5, 6, 0]), ["a", "b"])
        assert clip == sink.clips[0][0]
        np.testing.assert_array_equal(sink.clips[0][1], frames)
        assert sink.clips[0][3] == ["a", "b"]
        bad = [
            (frames[:6], np.zeros(6), ["a"], "BAD_REQUEST"),  # not whole chunks
            (frames, np.full(8, 7), ["a", "b"], "BAD_ACTION"),  # out of range
            (frames, np.zeros(8), ["a"], "BAD_REQUEST"),  # one caption per chunk
            (frames[:, :32], np.zeros(8), ["a", "b"], "BAD_IMAGE"),
        ]
        for f, a, c, code in bad:
            with pytest.raises(RemoteError) as info:
                session.record(f, a, c)
            assert info.value.code == code
    with local_server() as server, connect(server.control_endpoint) as session:
        with pytest.raises(RemoteError, match="UNSUPPORTED"):
            session.record(frames, np.zeros(8), ["a", "b"])


def test_client_times_out_and_retries_without_a_server() -> None:
    with Client("tcp://127.0.0.1:9", timeout_s=0.1, retries=1) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="2 tries"):
            client.ping()
        assert time.monotonic() - started < 2


def test_non_loopback_needs_keys_or_insecure(tmp_path: Path) -> None:
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("ipc:///tmp/x")
    assert not is_loopback("tcp://0.0.0.0:5555") and not is_loopback("tcp://*:5555")
    with pytest.raises(ValueError, match="insecure"):
        Server(fake_factory, control="tcp://0.0.0.0:5555")
    with local_server(control="tcp://0.0.0.0:*", insecure=True) as server:
        port = server.control_endpoint.rpartition(":")[2]
        with Client(f"tcp://127.0.0.1:{port}") as client:
            assert client.ping() < 1


def test_curve_keys_encrypt_and_admit_only_known_clients(tmp_path: Path) -> None:
    paths = generate_keys(tmp_path / "keys")
    assert oct(paths["server_secret"].stat().st_mode)[-3:] == "600"
    with pytest.raises(FileExistsError):
        generate_keys(tmp_path / "keys")
    keys = tmp_path / "keys"
    with local_server(
        control="tcp://0.0.0.0:*", frames="tcp://0.0.0.0:*", curve_keys_dir=keys
    ) as server:
        port = server.control_endpoint.rpartition(":")[2]
        with connect(f"tcp://127.0.0.1:{port}", curve_keys_dir=keys) as session:
            assert session.frames_endpoint.startswith("tcp://127.0.0.1:")
            with session.observe() as observer:
                time.sleep(0.3)
                assert session.reset().tick == 0
                assert observer.recv(2.0) is not None
        with Client(f"tcp://127.0.0.1:{port}", timeout_s=0.3, retries=0) as plain:
            with pytest.raises(TimeoutError):
                plain.ping()


def test_stop_answers_the_step_in_flight_and_does_not_hang() -> None:
    server = Server(fake_factory, control="tcp://127.0.0.1:*", frames="tcp://127.0.0.1:*").start()
    with RawPeer(server.control_endpoint) as peer:
        sid = hello(peer, delay_s=0.3)
        peer.call("reset", 2, sid)
        peer.send("step", 3, sid)
        time.sleep(0.05)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 3
        assert peer.recv(1.0).body["tick"] == 1
    server.stop()  # safe twice


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_shuts_down_on_signals(tmp_path: Path, sig: int) -> None:
    control, frames = f"ipc://{tmp_path}/control", f"ipc://{tmp_path}/frames"
    code = (
        "import logging; logging.basicConfig(level=logging.INFO);"
        "from bridges.server import serve; from bridges.fake import fake_factory;"
        f"serve(fake_factory, control={control!r}, frames={frames!r})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        with Client(control, timeout_s=5, retries=0) as client:
            client.ping()  # up and serving
        os.kill(proc.pid, sig)
        assert proc.wait(timeout=10) == 0
        assert "bridge stopped" in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_calls_on_the_socket_thread_when_engine_threads_is_zero() -> None:
    with local_server(limits=ServerLimits(engine_threads=0)) as server:
        with connect(server.control_endpoint) as session:
            assert (
                session.reset(seed=1).frames.tobytes()
                == FakeSession().reset(seed=1).frames.tobytes()
            )
            assert session.step(2).tick == 1


def test_sample_bridge_client_runs(tmp_path: Path) -> None:
    sample = Path(__file__).parent.parent / "samples" / "bridge_client.py"
    with local_server() as server:
        out = subprocess.run([sys.executable, str(sample), server.control_endpoint], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "tick 20" in out.stdout
