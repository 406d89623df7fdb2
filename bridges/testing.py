"""Test helpers: a raw protocol peer and a fake-backed server on ephemeral loopback ports."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import zmq

from bridges.fake import fake_factory
from bridges.handlers import SessionFactory
from bridges.server import Server
from bridges.wire import Message, decode, encode


@contextlib.contextmanager
def local_server(factory: SessionFactory = fake_factory, **kwargs: Any) -> Iterator[Server]:
    """A started `Server` on `tcp://127.0.0.1:*` ports (see `control_endpoint`)."""
    kwargs.setdefault("control", "tcp://127.0.0.1:*")
    kwargs.setdefault("frames", "tcp://127.0.0.1:*")
    with Server(factory, **kwargs) as server:
        yield server


class RawPeer:
    """A DEALER that sends any frames and reads raw replies: for malformed-input tests."""

    def __init__(self, endpoint: str, *, identity: bytes | None = None) -> None:
        self.sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if identity is not None:
            self.sock.setsockopt(zmq.ROUTING_ID, identity)
        self.sock.connect(endpoint)

    def send_raw(self, frames: list[Any]) -> None:
        self.sock.send_multipart([b"", *frames], copy=False)

    def send(self, type: str, id: int, session: str | None = None, **body: Any) -> None:
        arrays = body.pop("arrays", None)
        self.send_raw(encode(type, id=id, session=session, body=body, arrays=arrays))

    def recv(self, timeout_s: float = 5.0) -> Message:
        """The next reply, decoded; raises TimeoutError."""
        return decode(self.recv_raw(timeout_s), max_message_bytes=1 << 30)

    def recv_raw(self, timeout_s: float = 5.0) -> list[bytes]:
        if not self.sock.poll(int(timeout_s * 1000)):
            raise TimeoutError(f"no reply in {timeout_s} s")
        parts = self.sock.recv_multipart()
        assert parts[0] == b"", "replies keep the empty delimiter"
        return parts[1:]

    def call(self, type: str, id: int, session: str | None = None, **body: Any) -> Message:
        self.send(type, id, session, **body)
        return self.recv()

    def close(self) -> None:
        self.sock.close(linger=0)

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
