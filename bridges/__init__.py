"""chunkworld bridges: drive a world over ZeroMQ (protocol `cwb/2`, see `bridges/PROTOCOL.md`).

Imports numpy, msgpack and pyzmq only: never torch, `world` or `sdk`. The sdk's command line
builds sessions and hands `bridges.server.serve` a factory.
"""

from bridges.client import Client, Observer, RemoteChunk, RemoteError, RemoteSession, connect
from bridges.limits import ServerLimits
from bridges.server import Server, serve
from bridges.session_api import ChunkLike, RecordSink, SessionLike
from bridges.wire import TAG, VERSION

__all__ = [
    "TAG",
    "VERSION",
    "ChunkLike",
    "Client",
    "Observer",
    "RecordSink",
    "RemoteChunk",
    "RemoteError",
    "RemoteSession",
    "Server",
    "ServerLimits",
    "SessionLike",
    "connect",
    "serve",
]
