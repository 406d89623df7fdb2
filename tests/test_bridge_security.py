"""Sessions belong to their token: no routing id, empty subscription or vanished client can take,
see or hold another client's session."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq

from bridges import Client, ServerLimits
from bridges.fake import FakeSession
from bridges.testing import RawPeer, local_server


def hello(peer: RawPeer, id: int = 1) -> tuple[str, str]:
    reply = peer.call("hello", id, versions=[2], options={})
    assert reply.type == "hello", reply.body
    return str(reply.body["session"]), str(reply.body["observer"])


def test_hello_gives_two_distinct_unguessable_tokens() -> None:
    with local_server() as server, RawPeer(server.control_endpoint) as peer:
        tokens = [hello(peer, i + 1) for i in range(3)]
    flat = [t for pair in tokens for t in pair]
    assert len(set(flat)) == 6
    assert all(len(t) == 32 and int(t, 16) >= 0 for t in flat)  # 128 random bits, hex


def test_a_client_with_the_same_routing_id_gets_nothing_of_the_session() -> None:
    with local_server() as server:
        with RawPeer(server.control_endpoint, identity=b"player-1") as victim:
            token, _ = hello(victim)
            assert victim.call("reset", 2, token, seed=1).body["tick"] == 0
            with RawPeer(server.control_endpoint, identity=b"player-1") as thief:
                thief.send("ping", 99)
                thief.send("step", 3, None)  # the victim's next id, without the token
                step = victim.call("step", 3, token, action=1)  # the victim's reply is its own
                assert (step.type, step.re, step.body["tick"]) == ("step", 3, 1)
                with pytest.raises(TimeoutError):
                    thief.recv(0.5)  # a duplicate routing id is ignored while the first is there
        with RawPeer(server.control_endpoint, identity=b"player-1") as thief:
            # The victim is gone; its routing id and request ids get the thief nothing of it.
            # (libzmq may not even admit the reused id at once: then nothing comes back at all.)
            thief.send("step", 3, None)
            thief.send("hello", 1, versions=[2], options={})
            replies = []
            while thief.sock.poll(1000):
                replies.append(thief.recv())
            for reply in replies:
                assert token not in repr(reply.body) and "frames" not in reply.arrays
                assert reply.body.get("code", "UNKNOWN_SESSION") == "UNKNOWN_SESSION"


def test_the_token_is_the_credential_from_any_connection() -> None:
    local = FakeSession()
    local.reset(seed=2)
    with local_server() as server:
        with RawPeer(server.control_endpoint) as first:
            token, _ = hello(first)
            first.call("reset", 2, token, seed=2)
        with RawPeer(server.control_endpoint) as second:  # a reconnect: new socket, new id
            step = second.call("step", 3, token, action="left")
            assert np.array_equal(step.arrays["frames"], local.step("left").frames)
            resent = second.call("step", 3, token, action="left")  # a resend: cached, not rerun
            assert resent.body == step.body and resent.id == step.id
            assert second.call("step", 4, token).body["tick"] == 2


def test_an_empty_or_guessed_subscription_receives_nothing() -> None:
    ctx = zmq.Context.instance()
    with local_server() as server, Client(server.control_endpoint, timeout_s=5) as client:
        session = client.hello()
        spies = []
        for prefix in (b"", session.id.encode(), session.observer_token[:8].encode(), b"0" * 32):
            spy = ctx.socket(zmq.SUB)
            spy.setsockopt(zmq.LINGER, 0)
            spy.setsockopt(zmq.SUBSCRIBE, prefix)
            spy.connect(session.frames_endpoint)
            spies.append(spy)
        with session.observe() as observer:
            time.sleep(0.3)  # let the subscriptions reach the server
            sent = [session.reset(seed=4)] + [session.step(a) for a in (1, 2, 3)]
            got = [observer.recv(5) for _ in sent]
        assert [c.tick for c in got if c is not None] == [0, 1, 2, 3]
        assert all(c is not None and c.session == session.observer_token for c in got)
        for spy in spies:
            assert spy.poll(300) == 0, "a subscription without the observer token got frames"
            spy.close()


def _until(attempt, what: str, timeout_s: float = 120.0):
    """``attempt()`` again until it returns something other than None (a wait on a condition,
    not on a clock: generous, so a loaded machine only makes the test slower)."""
    deadline = time.monotonic() + timeout_s
    while (got := attempt()) is None:
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return got


def test_sessions_of_vanished_clients_are_reclaimed() -> None:
    # the idle TTL is an hour: a session closed within the test's wait was reclaimed as an
    # orphan (its client gone), never as idle
    limits = ServerLimits(max_sessions=4, orphan_ttl_s=0.3, idle_ttl_s=3600)

    def vanish_with_a_session(endpoint: str) -> bool | None:
        with RawPeer(endpoint) as peer:
            reply = peer.call("hello", 1, versions=[2], options={}, timeout_s=60)
            if reply.type != "hello":
                assert reply.body["code"] == "LIMIT", reply.body
                return None
            reset = peer.call("reset", 2, reply.body["session"], timeout_s=60)
            assert reset.body["tick"] == 0, reset.body
            return True  # the peer closes here, its session left behind

    with local_server(limits=limits) as server:
        for _ in range(16):  # four times the server's room
            _until(
                lambda: vanish_with_a_session(server.control_endpoint),
                "vanished clients' sessions were kept",
            )
        with Client(server.control_endpoint, timeout_s=60) as client:

            def hello_or_limit():
                try:
                    return client.hello()
                except Exception as exc:
                    assert getattr(exc, "code", "") == "LIMIT", exc
                    return None

            session = _until(hello_or_limit, "no room for a new client")
            assert session.reset().tick == 0 and session.step(1).tick == 1


def test_a_connected_client_keeps_its_sessions_past_the_orphan_ttl() -> None:
    with (
        local_server(limits=ServerLimits(orphan_ttl_s=0.2)) as server,
        RawPeer(server.control_endpoint) as peer,
    ):
        token, _ = hello(peer)
        time.sleep(0.6)
        assert peer.call("reset", 2, token).body["tick"] == 0


class _Monitor:
    """A stand-in for the ROUTER's monitor socket: events are queued by the test."""

    def __init__(self) -> None:
        self.events: list[list[bytes]] = []

    def poll(self, timeout: int = 0) -> bool:
        return bool(self.events)

    def recv_multipart(self, flags: int = 0) -> list[bytes]:
        return self.events.pop(0)

    def push(self, event: int, fd: int) -> None:
        import struct

        self.events.append([struct.pack("=hi", event, fd), b"tcp://127.0.0.1:1"])


class _Frame:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def get(self, option: int) -> int:
        assert option == zmq.SRCFD
        return self.fd


def test_a_late_accepted_event_keeps_the_connection_that_already_asked() -> None:
    # under load the monitor's ACCEPTED can come after the connection's first request: the
    # replies to that request must still go out (they were dropped, and a client timed out)
    from bridges.connections import Connections

    monitor, dropped = _Monitor(), []
    conns = Connections(monitor, dropped.append)  # type: ignore[arg-type]
    asked = conns.of(_Frame(7))  # type: ignore[arg-type]
    monitor.push(zmq.EVENT_ACCEPTED, 7)
    conns.poll()
    assert conns.is_live(asked) and conns.of(_Frame(7)) == asked and dropped == []
    monitor.push(zmq.EVENT_DISCONNECTED, 7)
    conns.poll()
    assert not conns.is_live(asked) and dropped == [7]
    monitor.push(zmq.EVENT_ACCEPTED, 7)  # a new client on the same descriptor
    conns.poll()
    later = conns.of(_Frame(7))  # type: ignore[arg-type]
    assert conns.is_live(later) and later != asked and not conns.is_live(asked)


def test_a_client_on_the_descriptor_of_one_that_just_left_is_a_new_connection() -> None:
    # the old client's DISCONNECTED (and the new one's ACCEPTED) still queued when the new
    # client's hello is read: taken as the old connection, the new session was orphaned by that
    # event and reaped 5 s later (a flood test saw UNKNOWN_SESSION on its first reset)
    from bridges.connections import Connections

    monitor, dropped = _Monitor(), []
    conns = Connections(monitor, dropped.append)  # type: ignore[arg-type]
    monitor.push(zmq.EVENT_ACCEPTED, 9)
    conns.poll()
    old = conns.of(_Frame(9))  # type: ignore[arg-type]
    monitor.push(zmq.EVENT_DISCONNECTED, 9)
    monitor.push(zmq.EVENT_ACCEPTED, 9)
    new = conns.of(_Frame(9))  # type: ignore[arg-type]
    assert new != old and conns.is_live(new) and not conns.is_live(old) and dropped == [9]
    conns.poll()
    assert dropped == [9] and conns.is_live(new)
