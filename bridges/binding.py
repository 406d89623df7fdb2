"""Where and how a bridge server listens: loopback, CURVE keys or an explicit `insecure`, free
ports, and the options of its listening sockets.

`check_bind` lets `chunkworld serve` refuse a bad endpoint before it loads a model; `Server` runs
the same checks when it is built and when it binds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator


class BindError(ValueError):
    """The server cannot listen where it was asked to; the message says what to change."""


def is_loopback(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on 127.x.x.x, localhost or ::1."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    host = rest.rpartition(":")[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def check_secure(*endpoints: str, curve_keys_dir: str | Path | None, insecure: bool) -> None:
    """Refuse a non-loopback endpoint unless CURVE keys or `insecure` allow it.

    Raises:
        BindError: naming the endpoint and the two ways to allow it.
    """
    for endpoint in endpoints:
        if not (is_loopback(endpoint) or curve_keys_dir is not None or insecure):
            raise BindError(
                f"{endpoint} is not loopback: pass curve_keys_dir (make keys with "
                "`chunkworld keys DIR`, then --keys DIR) or insecure=True (--insecure) to serve on it"
            )


def bind_failed(endpoint: str, exc: zmq.ZMQError) -> BindError:
    """The error for a bind that failed (port in use, bad address): one line naming the endpoint."""
    return BindError(f"cannot listen on {endpoint}: {os.strerror(exc.errno or 0)}")


def check_bind(
    control: str, frames: str, *, curve_keys_dir: str | Path | None = None, insecure: bool = False
) -> None:
    """Check that a server could bind both endpoints (loopback or keys or `insecure`, free ports)
    without starting it; `chunkworld serve` calls this before loading a model.

    Raises:
        BindError: one line saying what to change.
    """
    check_secure(control, frames, curve_keys_dir=curve_keys_dir, insecure=insecure)
    ctx = zmq.Context()
    try:
        for endpoint in (control, frames):
            sock = ctx.socket(zmq.ROUTER)
            try:
                sock.bind(endpoint)
            except zmq.ZMQError as exc:
                raise bind_failed(endpoint, exc) from None
            finally:
                sock.close(linger=0)
    finally:
        ctx.term()


def start_auth(ctx: zmq.Context[Any], keys: Path) -> ThreadAuthenticator:
    """Start CURVE authentication on `ctx`: admit only clients whose public key file (`*.key`)
    is in `keys` (a folder from `bridges.keys.generate_keys`). Stop it when the server stops."""
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(keys))
    return auth


def listening_socket(
    ctx: zmq.Context[Any], kind: int, snd_hwm: int, heartbeat_ms: int, keys: Path | None
) -> zmq.Socket[Any]:
    """A socket for the server to bind: send high-water mark, no linger, heartbeats, and with
    `keys` the server's CURVE key pair (call `start_auth` first)."""
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.SNDHWM, snd_hwm)
    # No receive high-water mark, on purpose. When a peer's inbound pipe reaches RCVHWM,
    # libzmq 4.3.5 stops reading that connection; if the peer then resets the connection
    # while replies to it are still queued, the I/O thread aborts the whole process
    # (`Assertion failed: !_io_error (src/stream_engine_base.cpp:310)`, zeromq/libzmq#4841;
    # no released libzmq fixes it). The socket thread drains both sockets on every turn
    # instead, so nothing piles up there; tests/test_bridge_flood.py floods and vanishes.
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.HEARTBEAT_IVL, heartbeat_ms)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * heartbeat_ms)
    sock.setsockopt(zmq.HEARTBEAT_TTL, 3 * heartbeat_ms)
    if keys is not None:
        public, secret = zmq.auth.load_certificate(keys / "server.key_secret")
        sock.curve_secretkey, sock.curve_publickey = secret, public  # type: ignore[assignment]
        sock.curve_server = True
    return sock
