"""The bridge server: control on a ROUTER socket, chunks on a PUB socket, sessions on engine threads.

Threads and ownership:

    socket thread   owns ROUTER + PUB: decodes, validates, dedups, answers ping/errors itself,
                    hands session calls to an engine thread, sends replies, publishes chunks.
    engine threads  `limits.engine_threads` (default 1: one thread owns the model). Each runs the
                    calls of the sessions pinned to it, in order, and pushes the encoded reply
                    back through a queue plus an inproc wake-up socket.

A session has at most one call in flight; a second gets BUSY. `Server` is for tests and
embedding (`with Server(factory) as s:`); `serve()` blocks until SIGINT/SIGTERM.
"""

from __future__ import annotations

import hmac
import itertools
import logging
import queue
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from bridges.binding import bind_failed, check_secure, listening_socket, start_auth
from bridges.connections import Connections, RequestQuota
from bridges.engine import Engine, Job, Result, reply_frames
from bridges.handlers import OPS, Connection, Context, Outcome, SessionFactory, Slot
from bridges.limits import ServerLimits
from bridges.reply_cache import ReplyCache
from bridges.session_api import RecordSink
from bridges.wire import Message, WireError, decode, encode, error_body, peek_id

DEFAULT_CONTROL = "tcp://127.0.0.1:5555"
DEFAULT_FRAMES = "tcp://127.0.0.1:5556"
POLL_MS = 100  # how often the socket thread looks at the clock (idle expiry, stop)
BATCH = 64  # requests taken from ROUTER before looking at finished results again
log = logging.getLogger(__name__)


class Server:
    """A bridge server running in a background thread.

    Args:
        session_factory: makes a session from the `options` map of a `hello` request; raise
            ValueError/TypeError for bad options (the client gets BAD_REQUEST).
        control: endpoint the ROUTER binds (requests, replies); `tcp://127.0.0.1:*` picks a port.
        frames: endpoint the PUB binds (chunks, topic = session id).
        curve_keys_dir: folder from `bridges.keys.generate_keys`; turns on CURVE encryption and
            admits only clients whose public key file (`*.key`) is in that folder.
        insecure: allow a non-loopback endpoint without CURVE.
        record_sink: where `record` requests land; without one they get UNSUPPORTED.
        limits: sizes, counts and timeouts.
    """

    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        control: str = DEFAULT_CONTROL,
        frames: str = DEFAULT_FRAMES,
        curve_keys_dir: str | Path | None = None,
        insecure: bool = False,
        record_sink: RecordSink | None = None,
        limits: ServerLimits | None = None,
    ) -> None:
        check_secure(control, frames, curve_keys_dir=curve_keys_dir, insecure=insecure)
        self.factory, self.record_sink = session_factory, record_sink
        self.limits = limits or ServerLimits()
        self._control, self._frames_bind = control, frames
        self._keys = Path(curve_keys_dir) if curve_keys_dir is not None else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._slots: dict[str, Slot] = {}
        self._pending: set[tuple[Any, ...]] = set()  # cache keys of requests in flight
        self._observers: dict[str, Slot] = {}  # observer token -> its session
        self._quota = RequestQuota(self.limits.max_requests_per_s)
        self._cache = ReplyCache(self.limits.reply_cache_entries, self.limits.reply_cache_bytes)
        self._wake_endpoint = f"inproc://bridge-wake-{secrets.token_hex(6)}"
        self.control_endpoint = self.frames_endpoint = ""

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Server:
        """Bind the sockets and start the threads. Returns self."""
        assert self._thread is None, "start() once"
        self._zmq = zmq.Context()
        self._auth = start_auth(self._zmq, self._keys) if self._keys is not None else None
        # No ROUTER_HANDOVER: a second connection that claims a routing id in use is ignored
        # until the first one is gone, so it can never receive the first one's replies.
        self._router = self._socket(zmq.ROUTER, self.limits.snd_hwm)
        self._router.setsockopt(zmq.MAXMSGSIZE, self.limits.max_message_bytes)
        self._monitor = self._router.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self._conns = Connections(self._monitor, self._orphan)
        # XPUB in manual mode: the socket thread sees every subscription and applies only those
        # that name a live observer token, so an empty or guessed prefix receives nothing.
        self._pub = self._socket(zmq.XPUB, self.limits.pub_hwm)
        self._pub.setsockopt(zmq.XPUB_MANUAL, 1)
        self._wake = self._zmq.socket(zmq.PULL)
        self._wake.bind(self._wake_endpoint)
        for sock, endpoint in ((self._router, self._control), (self._pub, self._frames_bind)):
            try:
                sock.bind(endpoint)
            except zmq.ZMQError as exc:
                for other in (self._monitor, self._router, self._pub, self._wake):
                    other.close(linger=0)
                raise bind_failed(endpoint, exc) from None
        self.control_endpoint = self._router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.frames_endpoint = self._pub.getsockopt_string(zmq.LAST_ENDPOINT)
        self._ctx = Context(self.factory, self.limits, self.record_sink, self.frames_endpoint)
        self._engines = [
            Engine(i, self._ctx, zmq_context=self._zmq, wake_endpoint=self._wake_endpoint,
                   results=self._results, ids=self._ids, depth=2 * self.limits.max_sessions)
            for i in range(max(1, self.limits.engine_threads))
        ]  # fmt: skip
        self._inline = self.limits.engine_threads == 0  # calls run on the socket thread
        for engine in self._engines:
            if not self._inline:
                engine.start()
        self._thread = threading.Thread(target=self._loop, name="bridge-sockets", daemon=True)
        self._thread.start()
        log.info("bridge serving control %s frames %s", self.control_endpoint, self.frames_endpoint)
        return self

    def _socket(self, kind: int, snd_hwm: int) -> zmq.Socket[Any]:
        return listening_socket(self._zmq, kind, snd_hwm, self.limits.heartbeat_ms, self._keys)

    def request_stop(self) -> None:
        """Ask the server to stop (safe from a signal handler); `stop()` also waits."""
        self._stop.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop: answer what is in flight (up to `limits.shutdown_grace_s`), close sessions,
        close sockets. Safe twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.limits.shutdown_grace_s + 5)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the server to stop; True once it has."""
        assert self._thread is not None, "start() first"
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ socket thread

    def _loop(self) -> None:
        poller = zmq.Poller()
        for sock in (self._router, self._wake, self._monitor, self._pub):
            poller.register(sock, zmq.POLLIN)
        deadline = None
        try:
            while True:
                if self._stop.is_set() and deadline is None:
                    deadline = time.monotonic() + self.limits.shutdown_grace_s
                if deadline is not None and (not self._pending or time.monotonic() > deadline):
                    self._refuse_queued()
                    break
                events = dict(poller.poll(POLL_MS))
                if self._wake in events:
                    while self._wake.poll(0):
                        self._wake.recv()
                self._conns.poll()
                self._collect()
                if self._router in events:
                    for _ in range(BATCH):
                        try:
                            parts = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._on_request(parts, stopping=self._stop.is_set())
                        # Give the GIL to an engine thread that waits for it (a sleep releases
                        # it; without this a flood of cheap requests holds it for the whole
                        # 5 ms switch interval, again and again), and send what it finished.
                        time.sleep(0)
                        self._collect()
                if self._pub in events:
                    self._subscriptions()
                self._expire_idle()
        except Exception:
            log.exception("bridge socket thread failed; shutting down")
        finally:
            self._shutdown()

    def _refuse_queued(self) -> None:
        """On the way out: answer SHUTTING_DOWN to the requests already received (up to a
        bound: a flood's backlog does not hold the exit)."""
        for _ in range(10 * BATCH):
            try:
                parts = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._on_request(parts, stopping=True)

    def _orphan(self, fd: int) -> None:
        """The connection on `fd` dropped: the sessions last used from it become orphans."""
        now = time.monotonic()
        for slot in self._slots.values():
            if slot.home.fd == fd and slot.orphaned_since is None:
                slot.orphaned_since = now

    def _subscriptions(self) -> None:
        """Apply subscriptions to live observer tokens; ignore every other one."""
        while True:
            try:
                data = self._pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not data or data[0] not in (0, 1):
                continue
            topic = data[1:]
            if data[0] == 0:
                self._pub.setsockopt(zmq.UNSUBSCRIBE, topic)
            elif topic.decode("utf-8", "replace") in self._observers:
                self._pub.setsockopt(zmq.SUBSCRIBE, topic)
            else:
                log.info("subscription to an unknown observer token ignored")

    def _collect(self) -> None:
        while True:
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                return
            job, slot = result.job, result.job.slot
            slot.busy, slot.last_used = False, time.monotonic()
            if result.drop_slot:
                self._forget(slot)
            if job.envelope is None:
                continue
            self._pending.discard(job.key)
            if result.cacheable:
                self._cache.put(job.key, result.reply)
            if job.conn is not None and self._conns.is_live(job.conn):
                self._router.send_multipart(job.envelope + result.reply, copy=False)
            else:  # whoever asked is gone; a resend with the token gets the cached reply
                log.debug("reply to %s id %d kept: its connection closed", job.msg_type, job.msg_id)
            if result.publish is not None:
                try:
                    self._pub.send_multipart(result.publish, zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    log.debug("frames of a session dropped")

    def _on_request(self, zframes: list[zmq.Frame], *, stopping: bool) -> None:
        conn = self._conns.of(zframes[-1])
        if self._quota.over(conn):
            return
        parts = [f.bytes for f in zframes]
        identity = parts[0]
        split = 2 if len(parts) > 1 and parts[1] == b"" else 1  # REQ peers add an empty delimiter
        envelope, frames = parts[:split], parts[split:]
        lim = self.limits
        try:
            msg = decode(frames, max_header_bytes=lim.max_header_bytes, max_depth=lim.max_depth,
                         max_message_bytes=lim.max_message_bytes, max_buffers=lim.max_buffers)  # fmt: skip
        except WireError as exc:
            log.info("bad message from %s: %s", identity.hex(), exc)
            re = peek_id(frames)
            self._send_error(envelope, re, exc.code, exc.message, exc.retryable)
            return
        # Replies are cached under the session token (only its holder can ask for them again)
        # or, for ping and hello, under the connection that asked.
        key: tuple[Any, ...] = (
            ("s", msg.session, msg.id) if msg.session is not None else ("c", conn, identity, msg.id)
        )
        if key in self._pending:
            log.debug("resent id %d still in flight; its reply will answer", msg.id)
            return
        cached = self._cache.get(key)
        if cached is not None:
            self._router.send_multipart(envelope + cached, copy=False)
            return
        try:
            if stopping:
                raise WireError("SHUTTING_DOWN", "the server is stopping", retryable=True)
            self._dispatch(msg, envelope, key, conn)
        except WireError as exc:
            reply = self._send_error(envelope, msg.id, exc.code, exc.message, exc.retryable)
            if not exc.retryable:
                self._cache.put(key, reply)

    def _dispatch(
        self, msg: Message, envelope: list[bytes], key: tuple[Any, ...], conn: Connection
    ) -> None:
        op = OPS.get(msg.type)
        if op is None:
            raise WireError("UNKNOWN_TYPE", f"unknown type {msg.type!r}; known: {sorted(OPS)}")
        unknown = sorted(set(msg.arrays) - op.buffers)
        if unknown:
            raise WireError(
                "BAD_BUFFER",
                f"{msg.type} reads no buffer named {unknown[0]!r:.40}; it reads {sorted(op.buffers)}",
            )
        slot = self._owned_slot(msg, conn) if op.needs_session else None
        args = op.check(msg, self._ctx, slot)
        if op.run is None:
            assert isinstance(args, Outcome)
            reply = reply_frames(self._ids, msg.type, msg.id, msg.session, args)
            self._cache.put(key, reply)
            self._router.send_multipart(envelope + reply, copy=False)
            return
        if slot is None:  # hello makes the slot
            slot = self._new_slot(conn)
        self._submit(Job(op, slot, args, msg.type, msg.id, envelope, key, conn))

    def _owned_slot(self, msg: Message, conn: Connection) -> Slot:
        slot = self._slots.get(msg.session or "")
        if slot is None or not hmac.compare_digest(slot.sid, msg.session or ""):
            raise WireError(
                "UNKNOWN_SESSION",
                "no session with this token; send hello and put the session token it returns in "
                f"every request's 'session' (idle sessions close after {self.limits.idle_ttl_s:g} "
                f"s, those of a client whose connection dropped after {self.limits.orphan_ttl_s:g} s)",
            )
        if slot.busy:
            raise WireError("BUSY", "the session is busy with another call", retryable=True)
        slot.home, slot.orphaned_since = conn, None
        return slot

    def _new_slot(self, conn: Connection) -> Slot:
        if len(self._slots) >= self.limits.max_sessions:
            raise WireError("LIMIT", "the server has max_sessions sessions", retryable=True)
        if sum(s.home == conn for s in self._slots.values()) >= self.limits.max_sessions_per_client:
            raise WireError(
                "LIMIT",
                "this connection has max_sessions_per_client sessions; close one",
                retryable=True,
            )
        sid, observer = secrets.token_hex(16), secrets.token_hex(16)
        slot = Slot(sid, observer, conn, next(self._ids) % len(self._engines), time.monotonic())
        self._slots[sid] = slot
        self._observers[observer] = slot
        return slot

    def _forget(self, slot: Slot) -> None:
        if self._slots.get(slot.sid) is slot:
            del self._slots[slot.sid]
            del self._observers[slot.observer]

    def _submit(self, job: Job) -> None:
        job.slot.busy, job.slot.last_used = True, time.monotonic()
        if self._inline:
            self._results.put(self._engines[0].execute(job))
            self._collect()
            return
        try:
            self._engines[job.slot.worker].jobs.put_nowait(job)
        except queue.Full:
            job.slot.busy = False
            if job.msg_type == "hello":
                self._forget(job.slot)
            raise WireError("BUSY", "the engine queue is full; retry", retryable=True) from None
        if job.envelope is not None:
            self._pending.add(job.key)

    def _expire_idle(self) -> None:
        now = time.monotonic()
        for slot in list(self._slots.values()):
            if slot.busy:
                continue
            if now - slot.last_used > self.limits.idle_ttl_s:
                log.info("a session idle for %.0f s: closing", now - slot.last_used)
                self._close_slot(slot)
            elif slot.orphaned_since is not None and (
                now - slot.orphaned_since > self.limits.orphan_ttl_s
            ):
                log.info("a session whose client disconnected %.1f s ago: closing",
                         now - slot.orphaned_since)  # fmt: skip
                self._close_slot(slot)

    def _close_slot(self, slot: Slot) -> None:
        self._forget(slot)
        try:
            self._submit(Job(OPS["close"], slot, None, "close", 0, None))
        except WireError:
            log.warning("could not queue the close of a session")

    def _send_error(
        self, envelope: list[bytes], re: int | None, code: str, message: str, retryable: bool
    ) -> list[Any]:
        n = next(self._ids)
        reply: list[Any] = encode("error", id=n, re=re, seq=n, time=time.time(),
                       body=error_body(code, message, retryable))  # fmt: skip
        self._router.send_multipart(envelope + reply, copy=False)
        return reply

    def _shutdown(self) -> None:
        for slot in list(self._slots.values()):
            self._close_slot(slot)  # queued behind any call still in flight
        started = [e for e in self._engines if e.ident is not None]
        for engine in started:
            try:
                engine.jobs.put(None, timeout=0.1)
            except queue.Full:
                pass
        until = time.monotonic() + self.limits.shutdown_grace_s
        for engine in started:
            engine.join(max(0.0, until - time.monotonic()))
        hung = [e.name for e in self._engines if e.is_alive()]
        self._router.disable_monitor()
        for sock in (self._monitor, self._router, self._pub, self._wake):
            sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        if hung:
            log.warning("engine threads %s still busy at shutdown; left running", hung)
        else:
            self._zmq.term()
        log.info("bridge stopped")


def serve(session_factory: SessionFactory, **kwargs: Any) -> None:
    """Run a server until SIGINT or SIGTERM (keyword arguments as `Server`)."""
    server = Server(session_factory, **kwargs)
    main = threading.current_thread() is threading.main_thread()
    previous = {}
    if main:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, frame: server.request_stop())
    try:
        with server:
            while not server.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
