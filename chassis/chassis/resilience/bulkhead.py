"""A bulkhead: bounded concurrency and a bounded queue per dependency.

One slow dependency then holds at most `max_concurrent + max_queued` of our tasks, and the
calls to every other dependency keep their own room. A call that finds the queue full is
rejected at once with `BulkheadFull`; a queued call waits no longer than it was told to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chassis.resilience.errors import BulkheadFull, DeadlineExceeded


class Bulkhead:
    def __init__(self, name: str, *, max_concurrent: int, max_queued: int):
        if max_concurrent < 1 or max_queued < 0:
            raise ValueError("a bulkhead needs room for one call and a queue of zero or more")
        self.name = name
        self._max_queued = max_queued
        self._slots = asyncio.Semaphore(max_concurrent)
        self._queued = 0

    @property
    def queued(self) -> int:
        return self._queued

    @asynccontextmanager
    async def slot(self, max_wait: float) -> AsyncIterator[None]:
        """Holds one of the concurrent slots for the duration of the block.

        Waits at most `max_wait` seconds for a slot (raising `DeadlineExceeded` after), and not
        at all when `max_queued` calls are already waiting (raising `BulkheadFull`).
        """
        if self._slots.locked():
            if self._queued >= self._max_queued:
                raise BulkheadFull(f"{self.name} has every slot taken and {self._queued} calls waiting")
            self._queued += 1
            try:
                async with asyncio.timeout(max_wait):
                    await self._slots.acquire()
            except TimeoutError:
                raise DeadlineExceeded(f"no slot for {self.name} within {max_wait:.3f}s") from None
            finally:
                self._queued -= 1
        else:
            await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()
