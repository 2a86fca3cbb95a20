"""A micro-cache for public, non-personal answers (the catalog pages everyone reads).

A second of staleness on a product list is invisible to shoppers, yet under load it turns
thousands of identical upstream calls into one per second. Concurrent misses for one key share
a single upstream call (single flight), so a cold key does not stampede the catalog. An admin's
write through this gateway clears it, so the admin reads back what was written.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable


class MicroCache:
    def __init__(self, ttl_seconds: float, *, max_entries: int = 2048, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()
        self._loading: dict[Hashable, asyncio.Future[tuple[bytes, bool]]] = {}
        self._generation = 0

    def clear(self) -> None:
        """Forgets every answer, and every load under way: one read before a write must not be
        kept, or joined, after it."""
        self._entries.clear()
        self._loading.clear()
        self._generation += 1

    async def get(self, key: Hashable, load: Callable[[], Awaitable[tuple[bytes, bool]]]) -> bytes:
        """The cached body, or `load()`'s. `load` says whether its answer may be kept."""
        if self._ttl <= 0:
            return (await load())[0]
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and entry[0] > now:
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return (await asyncio.shield(pending))[0]
        future: asyncio.Future[tuple[bytes, bool]] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        generation = self._generation
        try:
            body, cacheable = await load()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved here, so a miss nobody else waited on logs no warning
            raise
        finally:
            if self._loading.get(key) is future:
                del self._loading[key]
        future.set_result((body, cacheable))
        if cacheable and generation == self._generation:
            self._entries[key] = (now + self._ttl, body)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return body
