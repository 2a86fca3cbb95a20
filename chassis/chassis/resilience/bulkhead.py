"""A bulkhead: bounded concurrency and a bounded queue per dependency.

One slow dependency then holds at most `max_concurrent + max_queued` of our tasks, and calls
to every other dependency keep their own room. A call that finds the queue full is refused at
once with `BulkheadFull`; a queued call waits no longer than its deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chassis.resilience import metrics
from chassis.resilience.errors import BulkheadFull, DeadlineExceeded
from chassis.resilience.policy import BulkheadPolicy


class Bulkhead:
    def __init__(self, dependency: str, policy: BulkheadPolicy = BulkheadPolicy()):
        self.dependency = dependency
        self.policy = policy
        self._slots = asyncio.Semaphore(policy.max_concurrent)
        self._queued = 0

    @property
    def queued(self) -> int:
        return self._queued

    @asynccontextmanager
    async def slot(self, max_wait: float | None) -> AsyncIterator[None]:
        """Holds one concurrent slot for the block.

        Waits at most `max_wait` seconds for a slot (`None`: as long as it takes), then raises
        `DeadlineExceeded`; raises `BulkheadFull` at once when the queue is full too.
        """
        # `locked()` is also true while others wait, so a newcomer never overtakes the queue.
        if self._slots.locked():
            if self._queued >= self.policy.max_queued:
                metrics.bulkhead_rejections.labels(self.dependency).inc()
                raise BulkheadFull(f"{self.dependency} has every slot taken and {self._queued} calls waiting")
            self._queued += 1
            try:
                async with asyncio.timeout(max_wait):
                    await self._slots.acquire()
            except TimeoutError:
                raise DeadlineExceeded(f"no slot for {self.dependency} within {max_wait:.3f}s") from None
            finally:
                self._queued -= 1
        else:
            await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()
