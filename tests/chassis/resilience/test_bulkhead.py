import asyncio

import pytest

from chassis.resilience import (
    Bulkhead,
    BulkheadFull,
    BulkheadPolicy,
    DeadlineExceeded,
    Guard,
    Policy,
    deadline_scope,
)

from .fakes import metric

SMALL = BulkheadPolicy(max_concurrent=2, max_queued=1)


class Gate:
    """A dependency that holds every call until the test opens the gate."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.running = 0
        self.peak = 0

    async def __call__(self, timeout: float = 0.0) -> str:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.opened.wait()
            return "ok"
        finally:
            self.running -= 1


async def test_a_full_bulkhead_refuses_at_once_while_another_dependency_still_admits(dependency: str) -> None:
    slow, healthy = Guard(dependency, Policy(bulkhead=SMALL)), Guard(dependency + "_other", Policy(bulkhead=SMALL))
    gate = Gate()
    held = [asyncio.create_task(slow.call(gate, idempotent=True)) for _ in range(3)]  # 2 running, 1 queued
    await asyncio.sleep(0)
    assert gate.running == 2 and slow.bulkhead.queued == 1

    refused = asyncio.create_task(slow.call(gate, idempotent=True))
    done, _ = await asyncio.wait([refused], timeout=1.0)
    assert done and isinstance(refused.exception(), BulkheadFull)  # no waiting for the gate
    assert metric("agora_resilience_bulkhead_rejections_total", dependency) == 1

    async def answer(timeout: float) -> str:
        return "ok"

    assert await healthy.call(answer, idempotent=True) == "ok"

    gate.opened.set()
    assert await asyncio.gather(*held) == ["ok"] * 3


async def test_a_queued_call_takes_the_first_free_slot() -> None:
    bulkhead = Bulkhead("queue", SMALL)
    gate = Gate()

    async def through_bulkhead() -> str:
        async with bulkhead.slot(None):
            return await gate()

    tasks = [asyncio.create_task(through_bulkhead()) for _ in range(3)]
    await asyncio.sleep(0)
    assert gate.running == 2 and bulkhead.queued == 1
    gate.opened.set()
    assert await asyncio.gather(*tasks) == ["ok"] * 3
    assert bulkhead.queued == 0


async def test_a_queued_call_waits_no_longer_than_its_deadline(dependency: str) -> None:
    guard = Guard(dependency, Policy(bulkhead=BulkheadPolicy(max_concurrent=1, max_queued=5)))
    gate = Gate()
    holder = asyncio.create_task(guard.call(gate, idempotent=True))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with deadline_scope(0.05), pytest.raises(DeadlineExceeded):
        await guard.call(gate, idempotent=True)
    assert 0.04 <= loop.time() - started < 1.0
    assert guard.bulkhead.queued == 0
    assert metric("agora_resilience_deadline_rejections_total", dependency) == 1
    gate.opened.set()
    await holder


async def test_slots_are_returned_when_calls_fail_or_are_cancelled() -> None:
    bulkhead = Bulkhead("returns", BulkheadPolicy(max_concurrent=1, max_queued=0))
    with pytest.raises(RuntimeError):
        async with bulkhead.slot(None):
            raise RuntimeError("the call failed")
    gate = Gate()

    async def held() -> None:
        async with bulkhead.slot(None):
            await gate()

    task = asyncio.create_task(held())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with bulkhead.slot(None):
        pass  # would raise BulkheadFull if a slot had leaked


async def test_a_queued_call_that_is_cancelled_gives_its_place_in_the_queue_back() -> None:
    bulkhead = Bulkhead("queue", BulkheadPolicy(max_concurrent=1, max_queued=1))
    gate = Gate()

    async def held() -> None:
        async with bulkhead.slot(None):
            await gate()

    holder = asyncio.create_task(held())
    await asyncio.sleep(0)
    for _ in range(3):
        waiter = asyncio.create_task(held())
        await asyncio.sleep(0)
        assert bulkhead.queued == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert bulkhead.queued == 0
    gate.opened.set()
    await holder


async def test_many_tasks_never_exceed_the_concurrency_limit_and_the_overflow_is_refused() -> None:
    bulkhead = Bulkhead("many", BulkheadPolicy(max_concurrent=5, max_queued=20))
    gate = Gate()

    async def through_bulkhead() -> str:
        async with bulkhead.slot(None):
            return await gate()

    tasks = [asyncio.create_task(through_bulkhead()) for _ in range(100)]
    await asyncio.sleep(0)
    refused = [task for task in tasks if task.done()]
    assert len(refused) == 75 and all(isinstance(task.exception(), BulkheadFull) for task in refused)
    gate.opened.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results.count("ok") == 25
    assert gate.peak == 5
