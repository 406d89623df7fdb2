"""The server's reply cache: a resent request id gets the reply already sent, not a second run."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class ReplyCache:
    """Replies by (session token or connection, request id), bounded in count and bytes, oldest out first."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[Any, ...]) -> list[Any] | None:
        return self._items.get(key)

    def put(self, key: tuple[Any, ...], frames: list[Any]) -> None:
        size = sum(len(f) for f in frames)
        if key in self._items or size > self.max_bytes:
            return
        self._items[key] = frames
        self._bytes += size
        while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= sum(len(f) for f in old)
