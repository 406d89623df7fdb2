"""Test helpers: a raw protocol peer and a fake-backed server on ephemeral loopback ports."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
import time
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

    def call(
        self, type: str, id: int, session: str | None = None, *, timeout_s: float = 5.0, **body: Any
    ) -> Message:
        self.send(type, id, session, **body)
        return self.recv(timeout_s)

    def close(self) -> None:
        self.sock.close(linger=0)

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def server_process(
    limits: dict[str, Any] | None = None, *, factory: str = "bridges.fake:fake_factory"
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`serve()` in a child process on loopback ports: yields (process, control endpoint).

    A test that could abort the server (a libzmq assertion is a SIGABRT, not an exception) runs
    it this way, so an abort fails the test instead of killing pytest. On exit the child gets
    SIGTERM and is waited for.
    """
    module, _, name = factory.partition(":")
    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr);"
        f"from bridges import ServerLimits, serve; from {module} import {name} as factory;"
        "serve(factory, control='tcp://127.0.0.1:*', frames='tcp://127.0.0.1:*',"
        f" limits=ServerLimits(**{limits or {}!r}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    control = ""
    for line in proc.stderr:
        found = re.search(r"serving control (\S+) frames", line)
        if found:
            control = found.group(1)
            break
    if not control:
        raise RuntimeError(f"server did not start (exit code {proc.wait()})")
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True).start()
    try:
        yield proc, control
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def flood_and_vanish(control: str, *, requests: int = 5000, options: dict[str, Any] | None = None,
                     linger_s: float = 0.0) -> None:  # fmt: skip
    """One hostile client: hello and reset, then `requests` steps and pings sent without reading
    a reply, then close with linger 0 (the peer resets the connection with replies queued)."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 4)
    sock.connect(control)
    try:

        def call(frames: list[Any]) -> Message:
            sock.send_multipart([b"", *frames])
            if not sock.poll(10_000):
                raise TimeoutError("the server did not answer the flooding client")
            return decode(sock.recv_multipart()[1:], max_message_bytes=1 << 30)

        hello = call(encode("hello", id=1, body={"versions": [2], "options": options or {}}))
        sid = hello.body["session"]
        call(encode("reset", id=2, session=sid))
        for i in range(requests):
            kind = "step" if i % 50 == 0 else "ping"
            sock.send_multipart([b"", *encode(kind, id=i + 3, session=sid)])
        time.sleep(linger_s)
    finally:
        sock.close(linger=0)
