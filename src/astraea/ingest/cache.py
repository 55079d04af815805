"""A small time-bounded cache: what other components may change is re-read after `ttl`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Entries older than `ttl` (or from the future, should the clock step back) are reloaded.

    At most `max_entries` are kept; the least recently loaded go first.
    """

    def __init__(self, ttl: timedelta, max_entries: int) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[K, tuple[datetime, V]] = {}

    async def get(self, key: K, now: datetime, load: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        if entry is not None and timedelta(0) <= now - entry[0] <= self._ttl:
            return entry[1]
        value = await load()
        self._entries.pop(key, None)
        self._entries[key] = (now, value)
        if len(self._entries) > self._max_entries:
            del self._entries[next(iter(self._entries))]
        return value

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)
