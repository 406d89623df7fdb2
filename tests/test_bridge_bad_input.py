"""Bad input over a real socket: each gets an error reply or a logged drop, and the server keeps
serving. Ends with 10,000 random or mangled messages followed by a valid hello/reset/step."""

from __future__ import annotations

import math
import random
import time

import msgpack
import numpy as np
import pytest
import zmq

from bridges import ServerLimits
from bridges.testing import RawPeer, local_server
from bridges.wire import TAG, encode

# every one of the fuzz tests' messages is answered: no per-second quota in the way
LIMITS = ServerLimits(
    max_message_bytes=1 << 20, max_prompt_chars=100, max_frames=16, max_requests_per_s=10**6
)


@pytest.fixture(scope="module")
def endpoint():
    with local_server(limits=LIMITS) as server:
        yield server.control_endpoint


@pytest.fixture()
def peer(endpoint):
    with RawPeer(endpoint) as peer:
        yield peer


def still_serves(endpoint: str) -> None:
    with RawPeer(endpoint) as fresh:
        sid = fresh.call("hello", 1).body["session"]
        assert fresh.call("reset", 2, sid, seed=1).body["tick"] == 0
        assert fresh.call("step", 3, sid, action=1).body["tick"] == 1
        fresh.call("close", 4, sid)


def header(**fields) -> bytes:
    return msgpack.packb({"type": "ping", "id": 9, **fields})


FRAMINGS = {
    "not msgpack": ([TAG, b"\xc1\xc1"], "BAD_MESSAGE"),
    "truncated": ([TAG, header()[:-2]], "BAD_MESSAGE"),
    "trailing bytes": ([TAG, header() + b"\x90"], "BAD_MESSAGE"),
    "deep nesting": ([TAG, b"\x91" * 5000], "BAD_MESSAGE"),
    "header not a map": ([TAG, msgpack.packb("ping")], "BAD_MESSAGE"),
    "non-string keys": ([TAG, msgpack.packb({"type": "ping", "id": 9, 3: 1})], "BAD_MESSAGE"),
    "bad utf-8": ([TAG, b"\x82\xa4type\xa2\xc3\x28\xa2id\x09"], "BAD_MESSAGE"),
    "wrong tag": ([b"zmtp", header()], "BAD_MESSAGE"),
    "version mismatch": ([b"cwb/1", header()], "VERSION"),
    "missing header": ([TAG], "BAD_MESSAGE"),
    "frame count": ([TAG, header(), b"stray"], "BAD_MESSAGE"),
    "oversized": ([TAG, header(), bytes(700_000), bytes(700_000)], "TOO_LARGE"),
    "unknown command": ([TAG, msgpack.packb({"type": "launch", "id": 9})], "UNKNOWN_TYPE"),
    "id wrong type": ([TAG, header(id=1.5)], "BAD_MESSAGE"),
    "NaN time": ([TAG, header(time=math.nan)], "BAD_MESSAGE"),
}


@pytest.mark.parametrize("name", sorted(FRAMINGS))
def test_bad_framing_gets_an_error_reply(endpoint: str, peer: RawPeer, name: str) -> None:
    frames, code = FRAMINGS[name]
    peer.send_raw(frames)
    reply = peer.recv()
    assert reply.type == "error" and reply.body["code"] == code, reply.body
    assert isinstance(reply.body["message"], str) and reply.body["retryable"] is False
    still_serves(endpoint)


def image_msg(sid: str, desc: dict, data: bytes, id: int) -> list:
    head = {"type": "reset", "id": id, "session": sid, "body": {}, "bufs": [desc]}
    return [TAG, msgpack.packb(head), data]


def test_bad_fields_and_buffers(endpoint: str, peer: RawPeer) -> None:
    sid = peer.call("hello", 1).body["session"]
    cases = [
        (dict(type="step", action=1.5), "BAD_REQUEST"),  # float action
        (dict(type="step", action=math.nan), "BAD_REQUEST"),
        (dict(type="step", action=math.inf), "BAD_REQUEST"),
        (dict(type="step", action=True), "BAD_REQUEST"),
        (dict(type="step", action={"k": 1}), "BAD_REQUEST"),
        (dict(type="step", action=list(range(17))), "TOO_LARGE"),  # per-frame actions > max_frames
        (dict(type="step", action=1), "NOT_RESET"),  # step before reset
        (dict(type="reset", seed=math.nan), "BAD_REQUEST"),
        (dict(type="reset", seed=-1), "BAD_REQUEST"),
        (dict(type="reset", prompt=7), "BAD_REQUEST"),
        (dict(type="reset", prompt="x" * 101), "TOO_LARGE"),  # oversized prompt
        (dict(type="set_prompt"), "BAD_REQUEST"),
        (dict(type="restore", snapshot="snap-404"), "BAD_SNAPSHOT"),  # unknown snapshot id
        (dict(type="hello", versions=[1]), "VERSION"),
        (dict(type="hello", options={"warp": 9}), "BAD_REQUEST"),  # factory rejects options
        (dict(type="hello", options=[1]), "BAD_REQUEST"),
    ]
    for i, (fields, code) in enumerate(cases, start=10):
        reply = peer.call(fields.pop("type"), i, sid, **fields)
        assert (reply.re, reply.body.get("code")) == (i, code), (fields, reply.body)
    assert peer.call("step", 50, "no-such-session").body["code"] == "UNKNOWN_SESSION"
    ok = {"name": "image", "dtype": "uint8", "shape": [64, 64, 3], "encoding": "raw"}
    buffers = [
        ({**ok, "shape": [64, 64, 3]}, bytes(100), "BAD_BUFFER"),  # size != dtype x shape
        ({**ok, "encoding": "webp"}, bytes(64 * 64 * 3), "BAD_BUFFER"),  # unknown encoding
        ({**ok, "encoding": "png", "shape": [64, 64, 3]}, b"\x89PNG\r\n\x1a\nxx", "BAD_BUFFER"),
        ({**ok, "shape": [32, 32, 3]}, bytes(32 * 32 * 3), "BAD_IMAGE"),  # wrong shape
        ({**ok, "dtype": "int32", "shape": [4]}, bytes(16), "BAD_BUFFER"),  # image not uint8
        ({**ok, "name": "video", "shape": [17, 1, 1, 3]}, bytes(51), "TOO_LARGE"),  # frame count
    ]
    for i, (desc, data, code) in enumerate(buffers, start=60):
        peer.send_raw(image_msg(sid, desc, data, i))
        assert peer.recv().body["code"] == code, desc
    still_serves(endpoint)


def test_a_frame_over_maxmsgsize_drops_the_connection_not_the_server(endpoint: str) -> None:
    with RawPeer(endpoint) as peer:
        peer.send_raw([TAG, header(), bytes(2 << 20)])
        with pytest.raises(TimeoutError):
            peer.recv(0.5)
    still_serves(endpoint)


def test_client_that_disappears_mid_step(endpoint: str) -> None:
    peer = RawPeer(endpoint)
    sid = peer.call("hello", 1, options={"delay_s": 0.3}).body["session"]
    peer.call("reset", 2, sid)
    peer.send("step", 3, sid)
    peer.close()  # gone before the reply
    still_serves(endpoint)
    time.sleep(0.4)  # the orphan reply is dropped by ROUTER
    still_serves(endpoint)


def test_dead_and_slow_subscribers_do_not_block(endpoint: str) -> None:
    with RawPeer(endpoint) as peer:
        hello = peer.call("hello", 1)
        sid, frames = hello.body["session"], hello.body["frames_endpoint"]
        ctx = zmq.Context.instance()
        slow, dead = ctx.socket(zmq.SUB), ctx.socket(zmq.SUB)
        for sub in (slow, dead):
            sub.setsockopt(zmq.RCVHWM, 1)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.connect(frames)
        time.sleep(0.2)
        dead.close(linger=0)
        peer.call("reset", 2, sid)
        started = time.monotonic()
        for i in range(200):  # never read by `slow`
            assert peer.call("step", 10 + i, sid).body["tick"] == i + 1
        assert time.monotonic() - started < 20
        slow.close(linger=0)


def test_a_flood_from_one_client_does_not_starve_another(endpoint: str) -> None:
    with RawPeer(endpoint) as flooder:
        for i in range(3000):
            flooder.send_raw([TAG, b"garbage" if i % 2 else header(id=i)])
        started = time.monotonic()
        still_serves(endpoint)
        assert time.monotonic() - started < 10


def mangle(rng: random.Random, good: list[bytes]) -> list[bytes]:
    frames = [bytearray(f) for f in good]
    for _ in range(rng.randint(1, 4)):
        frames = frames or [bytearray()]
        kind = rng.randrange(6)
        i = rng.randrange(len(frames))
        if kind == 0 and frames[i]:
            frames[i][rng.randrange(len(frames[i]))] = rng.randrange(256)
        elif kind == 1:
            del frames[i][rng.randrange(len(frames[i]) + 1) :]
        elif kind == 2:
            frames[i] += rng.randbytes(rng.randint(1, 8))
        elif kind == 3 and len(frames) > 1:
            del frames[i]
        elif kind == 4:
            frames.insert(i, bytearray(rng.randbytes(rng.randint(0, 16))))
        else:
            frames = [
                bytearray(rng.randbytes(rng.randint(0, 40))) for _ in range(rng.randint(0, 4))
            ]
    return [bytes(f) for f in frames] or [b""]


def test_ten_thousand_random_or_mangled_messages_then_a_valid_session() -> None:
    rng = random.Random(1234)
    image = np.zeros((64, 64, 3), np.uint8)
    with local_server(limits=LIMITS) as server, RawPeer(server.control_endpoint) as peer:
        sid = peer.call("hello", 1).body["session"]
        goods = [
            [bytes(p) for p in encode("step", id=2, session=sid, body={"action": [1, 2, 3, 0]})],
            [bytes(p) for p in encode("reset", id=3, session=sid, arrays={"image": image})],
            [bytes(p) for p in encode("hello", id=4, body={"versions": [2]})],
            [bytes(p) for p in encode("set_prompt", id=5, session=sid, body={"prompt": "p"})],
        ]
        replies = 0
        for n in range(10_000):
            peer.send_raw(mangle(rng, rng.choice(goods)))
            if n % 200 == 199:  # keep the pipe short; count what came back
                while peer.sock.poll(0):
                    peer.recv_raw()
                    replies += 1
        while peer.sock.poll(500):
            peer.recv_raw()
            replies += 1
        assert replies > 9_000  # nearly every message answered (resent ids are deduplicated)
        still_serves(server.control_endpoint)
