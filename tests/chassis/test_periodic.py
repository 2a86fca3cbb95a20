"""The housekeeping worker: runs on schedule, outlives a failing run, and stops cleanly."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from chassis import metrics
from chassis.periodic import Periodic


async def test_the_job_runs_at_start_and_then_every_interval() -> None:
    runs: list[float] = []
    loop = asyncio.get_running_loop()

    async def job() -> None:
        runs.append(loop.time())

    worker = Periodic("tick", 0.05, job)
    await worker.start()
    async with asyncio.timeout(5):
        while len(runs) < 3:  # noqa: ASYNC110 (counting runs is the point)
            await asyncio.sleep(0.01)
    await worker.stop()

    assert all(later - earlier >= 0.045 for earlier, later in itertools.pairwise(runs))


async def test_a_failing_run_is_counted_and_the_next_one_still_happens() -> None:
    attempts = 0

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("database restarting")

    failures = metrics.periodic_job_failures.labels("flaky")
    before = failures._value.get()
    worker = Periodic("flaky", 0.02, flaky)
    await worker.start()
    async with asyncio.timeout(2):
        while attempts < 3:  # noqa: ASYNC110 (counting runs is the point)
            await asyncio.sleep(0.01)
    await worker.stop()

    assert failures._value.get() == before + 1


async def test_the_first_run_does_not_wait_and_stop_lets_it_finish() -> None:
    started = asyncio.Event()
    finished: list[bool] = []

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.1)
        finished.append(True)

    worker = Periodic("slow", 60, slow)
    await worker.start()
    await started.wait()
    await worker.stop()

    assert finished == [True]


def test_an_interval_must_be_positive() -> None:
    async def job() -> None:
        return None

    with pytest.raises(ValueError, match="positive"):
        Periodic("never", 0, job)
