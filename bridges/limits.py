"""Server limits: one frozen dataclass, advertised to clients in the `hello` reply."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on what one bridge server accepts and holds."""

    max_message_bytes: int = 32 * 1024 * 1024  # all frames of one request together
    max_header_bytes: int = 64 * 1024  # the msgpack header frame
    max_buffers: int = 4  # binary frames after the header
    max_depth: int = 16  # nesting of maps/lists inside the header
    max_prompt_chars: int = 2000  # the session's own limit may be lower; hello reports the min
    max_frames: int = 512  # frames in a reset video or a record clip, and per-frame actions
    max_sessions: int = 16  # live sessions on the server
    max_sessions_per_client: int = 4  # live sessions owned by one client identity
    idle_ttl_s: float = 300.0  # a session unused this long is closed
    # a session whose client's connection dropped (closed, or silent past the heartbeat timeout)
    # is closed this long after, unless a request with its token arrives first
    orphan_ttl_s: float = 5.0
    max_snapshots: int = 16  # per session; the oldest is forgotten past this
    # requests one connection may send per second; past it, the rest of the second's requests
    # are dropped unread (and logged), so a flood costs the other clients next to nothing
    max_requests_per_s: int = 2000
    reply_cache_entries: int = 1024  # cached replies for resent request ids (all clients)
    reply_cache_bytes: int = 64 * 1024 * 1024  # ... and their total size
    # threads that call sessions: 1 = one engine thread owns the model; 0 = the socket thread
    # calls sessions itself (lowest latency, but a slow tick delays every client's replies)
    engine_threads: int = 1
    snd_hwm: int = 1000  # replies queued per client that does not read them before ZeroMQ drops
    pub_hwm: int = 8  # queued chunks per subscriber before PUB drops the newest
    heartbeat_ms: int = 1000  # ZMTP heartbeat interval; peers silent for 3x this are dropped
    shutdown_grace_s: float = 2.0  # on stop, wait this long for in-flight calls to answer

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            least = 0 if field.name == "engine_threads" else 1e-9
            if not isinstance(value, int | float) or value < least:
                raise ValueError(f"ServerLimits.{field.name} must be >= {least:g}, got {value!r}")

    def advertised(self) -> dict[str, Any]:
        """The limits a client needs to know, as sent in the `hello` reply."""
        keys = (
            "max_message_bytes",
            "max_header_bytes",
            "max_buffers",
            "max_depth",
            "max_prompt_chars",
            "max_frames",
            "max_sessions",
            "max_sessions_per_client",
            "idle_ttl_s",
            "orphan_ttl_s",
            "max_snapshots",
            "max_requests_per_s",
        )
        return {k: getattr(self, k) for k in keys}
