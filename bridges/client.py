"""Python client of the bridge: `Client`, `RemoteSession`, `Observer` and `connect()`.

`RemoteSession` has the methods of `sdk.Session`, so a script switches by one line:

    session = Session.load("tiny")                                  # local
    session = bridges.connect("tcp://127.0.0.1:5555")               # remote

`Client` sends requests on a DEALER socket, waits with a timeout and resends the *same* request
id on timeout; the server answers a resent id from its reply cache, so a retried step never runs
twice. A session belongs to the token the `hello` reply gives (`RemoteSession.id`), which every
request on it carries; spectators subscribe with the separate `observer_token`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq
import zmq.auth

from bridges.wire import VERSION, Message, WireError, decode, encode

DEFAULT_CONTROL = "tcp://127.0.0.1:5555"
_WILDCARD_HOSTS = ("*", "0.0.0.0", "::", "[::]")
_DECODE_LIMITS = {"max_header_bytes": 16 << 20, "max_message_bytes": 1 << 31, "max_buffers": 64}
log = logging.getLogger(__name__)


class RemoteError(Exception):
    """An error reply. `code` is the protocol's error code (same codes as the sdk's errors)."""

    def __init__(self, code: str, message: str, retryable: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.retryable = code, message, retryable


@dataclass(frozen=True)
class RemoteChunk:
    """One tick received over the bridge (the fields of `sdk` chunks, plus where it came from)."""

    frames: np.ndarray  # uint8 (F, H, W, 3)
    tick: int
    action_tick: int
    ms: float  # the server's compute time for the tick
    session: str = ""
    seq: int = 0  # published chunks: consecutive per session, so a gap means dropped chunks


def _chunk(msg: Message) -> RemoteChunk:
    body = msg.body
    return RemoteChunk(
        frames=np.array(msg.arrays["frames"]),  # a writable copy, like a local session's
        tick=int(body["tick"]),
        action_tick=int(body["action_tick"]),
        ms=float(body["ms"]),
        session=msg.session or "",
        seq=msg.seq,
    )


def _secure(sock: zmq.Socket[Any], keys: str | Path | None) -> None:
    if keys is None:
        return
    keys = Path(keys)
    public, secret = zmq.auth.load_certificate(keys / "client.key_secret")
    server_public, _ = zmq.auth.load_certificate(keys / "server.key")
    sock.curve_secretkey, sock.curve_publickey = secret, public  # type: ignore[assignment]
    sock.curve_serverkey = server_public  # type: ignore[assignment]


def _action(action: Any) -> Any:
    if action is None or isinstance(action, str):
        return action
    if isinstance(action, int | np.integer):
        return int(action)
    if isinstance(action, Sequence | np.ndarray):
        return [_action(a) for a in action]
    raise RemoteError(
        "BAD_ACTION", f"action must be str, int or a sequence of them, got {action!r}"
    )


class Client:
    """Requests to one bridge server.

    Args:
        control: the server's control endpoint.
        timeout_s: how long to wait for each try.
        retries: resends of the same request after a timeout before `TimeoutError`.
        curve_keys_dir: folder holding `client.key_secret` and `server.key` for CURVE.
    """

    def __init__(
        self,
        control: str = DEFAULT_CONTROL,
        *,
        timeout_s: float = 10.0,
        retries: int = 2,
        curve_keys_dir: str | Path | None = None,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        self.control, self.timeout_s, self.retries = control, timeout_s, retries
        self.curve_keys_dir = curve_keys_dir
        self._zmq = context or zmq.Context.instance()
        self._sock = self._zmq.socket(zmq.DEALER)
        # no ROUTING_ID: the server identifies sessions by token, and a routing id it assigns
        # cannot collide with one still held by a connection it has not yet seen close
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
        self._sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
        _secure(self._sock, curve_keys_dir)
        self._sock.connect(control)
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self.closed = False
        self.limits: dict[str, Any] = {}  # the server's, from the last hello reply

    def request(
        self,
        type: str,
        body: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        arrays: dict[str, np.ndarray] | None = None,
        timeout_s: float | None = None,
    ) -> Message:
        """Send one request and return its reply.

        Raises:
            RemoteError: the server answered with an error.
            TimeoutError: no reply after `retries + 1` tries.
        """
        if self.closed:
            raise RemoteError("CLOSED", "the client is closed; make a new one")
        msg_id = next(self._ids)
        timeout = self.timeout_s if timeout_s is None else timeout_s
        for attempt in range(self.retries + 1):
            frames = encode(type, id=msg_id, session=session, seq=next(self._seq), time=time.time(),
                            body=body, arrays=arrays)  # fmt: skip
            self._check_size(frames)
            self._sock.send_multipart([b"", *frames], copy=False)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                if not self._sock.poll(int(left * 1000) + 1):
                    break
                reply = self._receive()
                if reply is None or reply.re != msg_id:
                    continue  # a late answer to an earlier request
                if reply.type == "error":
                    b = reply.body
                    raise RemoteError(
                        str(b.get("code")), str(b.get("message")), bool(b.get("retryable"))
                    )
                return reply
            log.info("no reply to %s id %d (try %d); resending", type, msg_id, attempt + 1)
        raise TimeoutError(
            f"no reply to {type!r} from {self.control} after {self.retries + 1} tries of {timeout:g} s;"
            " is the server running there?"
        )

    def _check_size(self, frames: list[Any]) -> None:
        """Refuse here what the server would refuse, or could not even answer (a single frame
        over its max_message_bytes makes libzmq drop the connection)."""
        total, most = sum(len(f) for f in frames), self.limits.get("max_message_bytes")
        if isinstance(most, int) and total > most:
            raise RemoteError(
                "TOO_LARGE",
                f"this request is {total} bytes; the server takes at most max_message_bytes={most}",
            )
        header, most = len(frames[1]), self.limits.get("max_header_bytes")
        if isinstance(most, int) and header > most:
            raise RemoteError(
                "TOO_LARGE",
                f"this request's header is {header} bytes (a long prompt?); the server takes at "
                f"most max_header_bytes={most}",
            )

    def _receive(self) -> Message | None:
        parts = self._sock.recv_multipart()
        if parts and parts[0] == b"":
            parts = parts[1:]
        try:
            return decode(parts, **_DECODE_LIMITS)
        except WireError as exc:
            log.warning("dropping a reply that does not decode: %s", exc)
            return None

    def ping(self) -> float:
        """Round trip in seconds."""
        started = time.perf_counter()
        self.request("ping")
        return time.perf_counter() - started

    def hello(self, **options: Any) -> RemoteSession:
        """Start a session on the server; `options` go to the server's session factory."""
        body = {"versions": [VERSION], "client": "chunkworld-python", "options": options}
        session = RemoteSession(self, self.request("hello", body))
        self.limits = dict(session.limits)
        return session

    def close(self) -> None:
        """Close the socket. Safe twice."""
        if not self.closed:
            self.closed = True
            self._sock.close(linger=0)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RemoteSession:
    """A session on a bridge server, with the methods of `sdk.Session`."""

    def __init__(self, client: Client, hello: Message, *, owns_client: bool = False) -> None:
        self.client, self.owns_client = client, owns_client
        self.id: str = hello.body["session"]  # the session token: keep it secret
        self.observer_token: str = hello.body["observer"]  # give this one to spectators
        self.facts: dict[str, Any] = hello.body["model"]
        self.limits: dict[str, Any] = hello.body["limits"]
        self.frames_endpoint = _frames_endpoint(client.control, hello.body["frames_endpoint"])
        self.closed = False

    def _call(self, type: str, body: dict[str, Any] | None = None, **kw: Any) -> Message:
        if self.closed:
            raise RemoteError("CLOSED", "session is closed; make a new one")
        return self.client.request(type, body, session=self.id, **kw)

    def describe(self) -> dict[str, Any]:
        return dict(self.facts)

    def reset(
        self,
        *,
        prompt: str | None = None,
        image: np.ndarray | None = None,
        video: np.ndarray | None = None,
        seed: int | None = None,
    ) -> RemoteChunk:
        arrays = {}
        for name, array in (("image", image), ("video", video)):
            if array is not None:
                if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
                    raise RemoteError("BAD_IMAGE", f"{name} must be a uint8 numpy array")
                arrays[name] = array
        body = {"prompt": prompt, "seed": None if seed is None else int(seed)}
        return _chunk(self._call("reset", body, arrays=arrays))

    def step(self, action: Any = None, *, prompt: str | None = None) -> RemoteChunk:
        return _chunk(self._call("step", {"action": _action(action), "prompt": prompt}))

    def set_prompt(self, prompt: str) -> None:
        self._call("set_prompt", {"prompt": prompt})

    def snapshot(self) -> str:
        """A snapshot id, kept on the server (the last `limits["max_snapshots"]` are kept)."""
        return str(self._call("snapshot").body["snapshot"])

    def restore(self, snapshot: str) -> None:
        self._call("restore", {"snapshot": snapshot})

    def record(self, frames: np.ndarray, actions: np.ndarray, captions: list[str]) -> str:
        """Send a clip (uint8 (T, H, W, 3), int (T,), one caption per chunk) to the server's
        dataset; returns its clip id."""
        arrays = {"frames": np.asarray(frames), "actions": np.asarray(actions, dtype=np.int64)}
        return str(self._call("record", {"captions": list(captions)}, arrays=arrays).body["clip"])

    def observe(self, timeout_s: float | None = None) -> Observer:
        """A subscriber to this session's chunks."""
        return Observer(
            self.frames_endpoint,
            self.observer_token,
            timeout_s=self.client.timeout_s if timeout_s is None else timeout_s,
            curve_keys_dir=self.client.curve_keys_dir,
        )

    def close(self) -> None:
        """Close the session on the server (and the client if this session owns it). Safe twice."""
        if not self.closed:
            try:
                self._call("close")
            except (RemoteError, TimeoutError) as exc:
                log.info("close of session %s: %s", self.id, exc)
            self.closed = True
        if self.owns_client:
            self.client.close()

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Observer:
    """Read-only view of a session: receives its published chunks (newest may drop if slow).
    `observer_token` is the session's `observer` from the hello reply (`RemoteSession.observe()`
    passes it); the server delivers nothing to any other subscription."""

    def __init__(
        self,
        frames_endpoint: str,
        observer_token: str,
        *,
        timeout_s: float = 10.0,
        curve_keys_dir: str | Path | None = None,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self._sock = (context or zmq.Context.instance()).socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, 16)
        _secure(self._sock, curve_keys_dir)
        self._sock.setsockopt(zmq.SUBSCRIBE, observer_token.encode())
        self._sock.connect(frames_endpoint)

    def recv(self, timeout_s: float | None = None) -> RemoteChunk | None:
        """The next chunk, or None after the timeout."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0 and self._sock.poll(int(left * 1000) + 1):
            parts = self._sock.recv_multipart()
            try:
                return _chunk(decode(parts[1:], **_DECODE_LIMITS))
            except (WireError, KeyError, TypeError, ValueError) as exc:
                log.warning("dropping a published message that does not decode: %s", exc)
        return None

    def close(self) -> None:
        self._sock.close(linger=0)

    def __enter__(self) -> Observer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _frames_endpoint(control: str, frames: str) -> str:
    """The server's frames endpoint as this client can reach it (a wildcard host is replaced by
    the host the client used for control)."""
    scheme, _, rest = frames.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme == "tcp" and host in _WILDCARD_HOSTS:
        control_host = control.partition("://")[2].rpartition(":")[0]
        return f"tcp://{control_host}:{port}"
    return frames


def connect(
    control: str = DEFAULT_CONTROL,
    *,
    timeout_s: float = 10.0,
    retries: int = 2,
    curve_keys_dir: str | Path | None = None,
    **options: Any,
) -> RemoteSession:
    """One line to a remote session: a `Client` plus `hello`; closing the session closes both."""
    client = Client(control, timeout_s=timeout_s, retries=retries, curve_keys_dir=curve_keys_dir)
    try:
        session = client.hello(**options)
    except BaseException:
        client.close()
        raise
    session.owns_client = True
    return session
