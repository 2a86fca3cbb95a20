import asyncio
import time

import pytest
from chassis.resilience import Bulkhead, BulkheadFull, DeadlineExceeded


async def occupy(bulkhead: Bulkhead, release: asyncio.Event, entered: list[int], number: int) -> int:
    async with bulkhead.slot(max_wait=10.0):
        entered.append(number)
        await release.wait()
    return number


async def test_a_full_bulkhead_rejects_at_once_while_another_dependency_still_admits() -> None:
    catalog = Bulkhead("catalog", max_concurrent=2, max_queued=1)
    cart = Bulkhead("cart", max_concurrent=2, max_queued=1)
    release, entered = asyncio.Event(), []
    holders = [asyncio.create_task(occupy(catalog, release, entered, n)) for n in range(3)]
    await asyncio.sleep(0)
    assert entered == [0, 1] and catalog.queued == 1

    started = time.perf_counter()
    with pytest.raises(BulkheadFull):
        async with catalog.slot(max_wait=10.0):
            pytest.fail("admitted past the bulkhead")
    assert time.perf_counter() - started < 0.01

    async with cart.slot(max_wait=0.0):
        pass
    release.set()
    assert await asyncio.gather(*holders) == [0, 1, 2]
    assert entered == [0, 1, 2]


async def test_a_queued_call_waits_no_longer_than_it_may() -> None:
    bulkhead = Bulkhead("catalog", max_concurrent=1, max_queued=5)
    release, entered = asyncio.Event(), []
    holder = asyncio.create_task(occupy(bulkhead, release, entered, 0))
    await asyncio.sleep(0)
    with pytest.raises(DeadlineExceeded):
        async with bulkhead.slot(max_wait=0.02):
            pytest.fail("admitted past the bulkhead")
    assert bulkhead.queued == 0
    release.set()
    await holder
    async with bulkhead.slot(max_wait=0.0):
        pass  # the slot the timed-out waiter never got was not lost


async def test_cancelled_waiters_leave_no_slot_behind() -> None:
    bulkhead = Bulkhead("catalog", max_concurrent=1, max_queued=10)
    release, entered = asyncio.Event(), []
    holder = asyncio.create_task(occupy(bulkhead, release, entered, 0))
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(occupy(bulkhead, release, entered, n)) for n in range(1, 6)]
    await asyncio.sleep(0)
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert bulkhead.queued == 0
    release.set()
    await holder
    assert entered == [0]
    async with bulkhead.slot(max_wait=0.0):
        pass


async def test_under_many_tasks_concurrency_never_exceeds_the_limit_and_queued_calls_all_run() -> None:
    bulkhead = Bulkhead("catalog", max_concurrent=5, max_queued=200)
    running = peak = done = 0

    async def work() -> None:
        nonlocal running, peak, done
        async with bulkhead.slot(max_wait=10.0):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.001)
            running -= 1
            done += 1

    results = await asyncio.gather(*(work() for _ in range(300)), return_exceptions=True)
    rejected = [result for result in results if isinstance(result, BulkheadFull)]
    assert peak == 5
    assert len(rejected) == 300 - 5 - 200
    assert done == 205
    assert bulkhead.queued == 0


def test_a_bulkhead_needs_room_for_one_call() -> None:
    with pytest.raises(ValueError):
        Bulkhead("x", max_concurrent=0, max_queued=0)
