"""A worker that runs a job now and then, for housekeeping such as forgetting expired records.

Register it with `app.add_worker(Periodic(...))`. It runs the job once at start and then every
`interval` seconds. A failing run is logged and counted, and the next one is tried on schedule:
housekeeping must never take a service down. On stop, a run in progress finishes first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from chassis import metrics
from chassis.logs import get_logger

log = get_logger(__name__)


class Periodic:
    def __init__(self, name: str, interval: float, job: Callable[[], Awaitable[object]]):
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.name = name
        self._interval = interval
        self._job = job
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"periodic-{self.name}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                result = await self._job()
            except Exception as error:
                metrics.periodic_job_failures.labels(self.name).inc()
                log.warning("periodic_job_failed", job=self.name, error=str(error) or type(error).__name__)
            else:
                log.debug("periodic_job_ran", job=self.name, result=result)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
