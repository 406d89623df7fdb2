"""Who is connected to the control socket, and how much each connection may ask per second.

Both belong to the server's socket thread. `Connections` follows the ROUTER's monitor events, so a
reply goes only to the connection that asked (not to a new client that reuses its descriptor) and
the sessions of a client that went away can be reclaimed. `RequestQuota` drops a connection's
requests past `max_requests_per_s`, so a flood costs the other clients next to nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from bridges.handlers import Connection

log = logging.getLogger("bridges.server")  # the server's log, as before the split


class Connections:
    """Live control connections by descriptor; a descriptor's generation changes when it connects
    or disconnects. `on_drop(fd)` runs for each connection that goes away."""

    def __init__(self, monitor: zmq.Socket[Any], on_drop: Callable[[int], None]) -> None:
        self._monitor, self._on_drop = monitor, on_drop
        self._live: set[int] = set()  # descriptors of open control connections
        self._generations: dict[int, int] = {}  # descriptor -> bumps on connect and disconnect
        # descriptors taken as live before their ACCEPTED event came (a loaded machine can hold
        # it back past `of`'s wait): that late event must not start a new generation, or the
        # replies to the requests already read from the connection would be dropped
        self._assumed: set[int] = set()

    def poll(self) -> None:
        """Apply the monitor events that have arrived."""
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            fd = int(event["value"])
            if event["event"] == zmq.EVENT_ACCEPTED and fd in self._assumed:
                self._assumed.discard(fd)
                continue
            self._assumed.discard(fd)
            self._generations[fd] = self._generations.get(fd, 0) + 1
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._live.add(fd)
                continue
            self._live.discard(fd)
            self._on_drop(fd)

    def of(self, frame: zmq.Frame) -> Connection:
        """The connection a received frame came from. The monitor events already queued are
        applied first, so a client that reuses the descriptor of one that just went away is a
        new connection even while the old one's DISCONNECTED waits behind its request (taken as
        the old connection, the new client's sessions were orphaned by that event and closed)."""
        self.poll()
        fd = int(frame.get(zmq.SRCFD))
        if fd not in self._live:  # its ACCEPTED event may still be on its way: wait a little
            until = time.monotonic() + 0.1
            while fd not in self._live and (left := until - time.monotonic()) > 0:
                if self._monitor.poll(max(1, int(left * 1000))):
                    self.poll()
            if fd not in self._live:
                self._live.add(fd)
                self._assumed.add(fd)
                self._generations[fd] = self._generations.get(fd, 0) + 1
        return Connection(fd, self._generations[fd])

    def is_live(self, conn: Connection) -> bool:
        """True while that connection (not a later one on the same descriptor) is open."""
        return conn.fd in self._live and self._generations.get(conn.fd) == conn.generation


class RequestQuota:
    """Requests per connection in the current one-second window, against a limit per second."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._window_start = 0.0
        self._counts: dict[Connection, int] = {}
        self._dropped: dict[Connection, int] = {}

    def over(self, conn: Connection) -> bool:
        """Count a request against its connection; True: drop it."""
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            if self._dropped:
                log.warning("dropped %d requests over max_requests_per_s from %d connection(s)",
                            sum(self._dropped.values()), len(self._dropped))  # fmt: skip
            self._window_start, self._counts, self._dropped = now, {}, {}
        count = self._counts[conn] = self._counts.get(conn, 0) + 1
        if count <= self.per_second:
            return False
        self._dropped[conn] = self._dropped.get(conn, 0) + 1
        return True
