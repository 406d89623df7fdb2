"""Every limit a client can hit is advertised in hello and answered with a reply naming the
request; resent pings are cached; a stopping server refuses new work and answers what it has."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq

from bridges import Client, RemoteError, ServerLimits
from bridges.binding import BindError, check_bind
from bridges.fake import FAKE_OPTION_BOUNDS
from bridges.testing import RawPeer, local_server
from bridges.wire import encode


def test_hello_advertises_every_limit_and_the_option_bounds() -> None:
    with local_server() as server, Client(server.control_endpoint, timeout_s=5) as client:
        limits = client.hello().limits
    assert limits == {
        "max_message_bytes": 32 * 1024 * 1024, "max_header_bytes": 64 * 1024, "max_buffers": 4,
        "max_depth": 16, "max_prompt_chars": 512, "max_frames": 512, "max_sessions": 16,
        "max_sessions_per_client": 4, "idle_ttl_s": 300.0, "orphan_ttl_s": 5.0,
        "max_snapshots": 16, "max_requests_per_s": 2000,
        "options": {k: list(v) for k, v in FAKE_OPTION_BOUNDS.items()},
    }  # fmt: skip


@pytest.mark.parametrize(
    "options",
    [{"height": 0}, {"width": 100_000}, {"chunk_frames": 2**40}, {"delay_s": 1e9}, {"x": 1}],
)
def test_hello_options_out_of_bounds_are_bad_requests(options: dict[str, float]) -> None:
    with local_server() as server, RawPeer(server.control_endpoint) as peer:
        reply = peer.call("hello", 7, versions=[2], options=options)
        assert (reply.re, reply.body["code"]) == (7, "BAD_REQUEST")


def test_a_prompt_over_the_advertised_limit_is_too_large() -> None:
    with local_server() as server, Client(server.control_endpoint, timeout_s=5) as client:
        session = client.hello()  # the fake's own limit (512) is below the server's (2000)
        session.reset(prompt="x" * 512)
        with pytest.raises(RemoteError) as info:
            session.step(prompt="x" * 513)
        assert info.value.code == "TOO_LARGE" and "512" in info.value.message
        with pytest.raises(RemoteError) as huge:  # 10 MB: answered, not retried to a timeout
            session.set_prompt("y" * 10_000_000)
        assert huge.value.code == "TOO_LARGE"


def test_the_client_refuses_a_request_over_max_message_bytes() -> None:
    limits = ServerLimits(max_message_bytes=64 * 1024)
    with local_server(limits=limits) as server, Client(server.control_endpoint) as client:
        session = client.hello()
        with pytest.raises(RemoteError) as info:
            session.reset(image=np.zeros((256, 256, 3), np.uint8))  # 192 KiB
        assert info.value.code == "TOO_LARGE" and "65536" in info.value.message
        assert session.reset().tick == 0  # the connection is still fine


def test_oversized_requests_get_replies_naming_them() -> None:
    limits = ServerLimits(max_message_bytes=4096)
    image = {"name": "image", "dtype": "uint8", "shape": [8], "encoding": "raw"}
    with local_server(limits=limits) as server, RawPeer(server.control_endpoint) as peer:
        header = encode("step", id=41, session="s", body={})[1]
        many = encode("step", id=42, session="s")[:1]
        many.append(encode("step", id=42, session="s", arrays={f"b{i}": np.zeros(8, np.uint8)
                                                               for i in range(5)})[1])  # fmt: skip
        many += [bytes(8)] * 5
        peer.send_raw(many)
        reply = peer.recv()
        assert (reply.re, reply.body["code"]) == (42, "TOO_LARGE")
        peer.send_raw([b"cwb/2", header, bytes(3000), bytes(3000)])  # 6 KB over 4 parts
        reply = peer.recv()
        assert (reply.re, reply.body["code"]) == (41, "TOO_LARGE")
        unknown = encode("step", id=43, session="s", arrays={"image": np.zeros(8, np.uint8)})
        reply = peer.call("ping", 44)
        assert reply.type == "ping"
        peer.send_raw(unknown)
        reply = peer.recv()
        assert (reply.re, reply.body["code"]) == (43, "BAD_BUFFER")
        assert image["name"] in reply.body["message"]


def test_a_resent_ping_gets_the_cached_reply() -> None:
    with local_server() as server, RawPeer(server.control_endpoint) as peer:
        peer.send("ping", 5)
        first = peer.recv_raw()
        peer.send("ping", 5)
        assert peer.recv_raw() == first
        peer.send("ping", 6)
        assert peer.recv_raw() != first


def test_a_stopping_server_refuses_new_work_and_answers_calls_in_flight() -> None:
    with local_server(limits=ServerLimits(shutdown_grace_s=5.0)) as server:
        with RawPeer(server.control_endpoint) as peer:
            sid = peer.call("hello", 1, versions=[2], options={"delay_s": 0.5}).body["session"]
            peer.send("reset", 2, sid)  # in flight for 0.5 s
            while not server._pending:  # the reset is running on the engine thread
                time.sleep(0.001)
            stopper = threading.Thread(target=server.stop)
            stopper.start()
            while not server._stop.is_set():
                time.sleep(0.001)
            peer.send("ping", 3)
            replies = {m.re: m for m in (peer.recv(), peer.recv())}
            stopper.join()
    assert replies[2].type == "reset" and replies[2].body["tick"] == 0
    assert replies[3].body == {
        "code": "SHUTTING_DOWN", "message": "the server is stopping", "retryable": True,
    }  # fmt: skip


def test_a_refused_bind_is_one_line_before_the_model_loads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sdk.cli import main

    # "no-such-model" would fail to load: the bind error comes first, so nothing loaded
    wide = ["serve", "--model", "no-such-model", "--control", "tcp://0.0.0.0:5555"]
    assert main(wide) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not loopback" in err and "--insecure" in err
    busy = zmq.Context.instance().socket(zmq.ROUTER)
    busy.bind("tcp://127.0.0.1:*")
    try:
        endpoint = busy.getsockopt_string(zmq.LAST_ENDPOINT)
        assert main(["serve", "--model", "no-such-model", "--frames", endpoint]) == 2
        err = capsys.readouterr().err
        assert (
            err == f"chunkworld serve: error: cannot listen on {endpoint}: Address already in use\n"
        )
        with pytest.raises(BindError, match="cannot listen"):
            check_bind("tcp://127.0.0.1:*", endpoint)
    finally:
        busy.close(linger=0)


def test_requests_past_the_per_connection_rate_are_dropped_and_others_still_served() -> None:
    limits = ServerLimits(max_requests_per_s=5)
    with (
        local_server(limits=limits) as server,
        RawPeer(server.control_endpoint) as flooder,
        RawPeer(server.control_endpoint) as other,
    ):
        for i in range(40):
            flooder.send("ping", i + 1)
        answered = []
        while flooder.sock.poll(500):
            answered.append(flooder.recv().re)
        # 5 a second: one window, or two if the burst straddled a window's end
        assert 5 <= len(answered) <= 10 and answered[:5] == [1, 2, 3, 4, 5]
        assert other.call("ping", 1).type == "ping"  # the quota is per connection
