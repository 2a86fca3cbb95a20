"""The worker that dispatches shipments when they fall due (`dispatch_at`).

The schedule lives in the database, not in a timer: a restart or a crash loses no dispatch (the
row is still `created` and due), and any number of instances may run this worker side by side
(each claims rows with `SKIP LOCKED`, so no shipment is dispatched twice).
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from chassis.logs import get_logger
from shipping.carrier import CarrierAdapter
from shipping.handlers import Outbox, dispatch_next

log = get_logger(__name__)


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, *, carrier: CarrierAdapter, outbox: Outbox, poll_interval: float = 0.2):
        self._pool = pool
        self._carrier = carrier
        self._outbox = outbox
        self._poll_interval = poll_interval
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="shipping-dispatcher")

    async def stop(self) -> None:
        """Finishes the dispatch in flight, then returns."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                while not self._stopping.is_set() and await dispatch_next(
                    self._pool, carrier=self._carrier, outbox=self._outbox
                ):
                    pass
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("dispatcher_database_error", error=str(error) or type(error).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._poll_interval)
