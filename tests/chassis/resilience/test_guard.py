import asyncio
import random

import grpc
import pytest
from structlog.testing import capture_logs

from chassis.resilience import (
    BreakerOpen,
    BreakerPolicy,
    BreakerState,
    BulkheadFull,
    BulkheadPolicy,
    DeadlineExceeded,
    Guard,
    Policy,
    RetryPolicy,
    deadline_scope,
)

from .fakes import FakeClock, metric, rpc_error


async def unavailable(timeout: float) -> str:
    await asyncio.sleep(0)
    raise rpc_error(grpc.StatusCode.UNAVAILABLE)


async def test_a_call_whose_deadline_has_passed_is_refused_before_anything_else(
    dependency: str, clock: FakeClock
) -> None:
    guard = Guard(dependency, Policy(), clock=clock, sleep=clock.sleep)
    attempts = 0

    async def attempt(timeout: float) -> str:
        nonlocal attempts
        attempts += 1
        return "ok"

    with deadline_scope(0.1, clock=clock):
        clock.advance(0.1)
        with pytest.raises(DeadlineExceeded):
            await guard.call(attempt, idempotent=True)
    assert attempts == 0
    assert metric("agora_resilience_deadline_rejections_total", dependency) == 1
    assert metric("agora_resilience_attempts_total", dependency) == 0


async def test_an_expired_call_is_refused_for_its_deadline_even_when_the_bulkhead_is_full(
    dependency: str, clock: FakeClock
) -> None:
    guard = Guard(dependency, Policy(bulkhead=BulkheadPolicy(max_concurrent=1, max_queued=0)), clock=clock)
    gate = asyncio.Event()

    async def held(timeout: float) -> str:
        await gate.wait()
        return "ok"

    holder = asyncio.create_task(guard.call(held, idempotent=True))
    await asyncio.sleep(0)
    with deadline_scope(0.0, clock=clock), pytest.raises(DeadlineExceeded):
        await guard.call(held, idempotent=True)
    gate.set()
    assert await holder == "ok"


async def test_each_attempt_gets_the_policy_timeout_shortened_to_the_deadline(
    dependency: str, clock: FakeClock
) -> None:
    guard = Guard(dependency, Policy(timeout_seconds=0.5), clock=clock, sleep=clock.sleep)
    given: list[float] = []

    async def attempt(timeout: float) -> float:
        given.append(timeout)
        return timeout

    await guard.call(attempt, idempotent=False)
    with deadline_scope(0.3, clock=clock):
        await guard.call(attempt, idempotent=False)
    assert given == pytest.approx([0.5, 0.3])


async def test_a_circuit_that_opens_during_a_call_stops_its_retries(dependency: str, clock: FakeClock) -> None:
    trips_at_once = BreakerPolicy(window_size=1, minimum_calls=1, failure_rate_threshold=1.0)
    guard = Guard(dependency, Policy(breaker=trips_at_once), clock=clock, sleep=clock.sleep)
    with pytest.raises(BreakerOpen):
        await guard.call(unavailable, idempotent=True)
    assert metric("agora_resilience_attempts_total", dependency) == 1
    assert metric("agora_resilience_breaker_rejections_total", dependency) == 1
    assert metric("agora_resilience_retries_total", dependency) == 0, "the retry the breaker refused was not sent"


async def test_a_retrying_call_keeps_its_one_bulkhead_slot_through_the_backoff(
    dependency: str, clock: FakeClock
) -> None:
    in_backoff = asyncio.Event()
    backoff_over = asyncio.Event()

    async def sleep(seconds: float) -> None:
        in_backoff.set()
        await backoff_over.wait()

    one_slot = BulkheadPolicy(max_concurrent=1, max_queued=0)
    guard = Guard(dependency, Policy(bulkhead=one_slot), clock=clock, sleep=sleep)
    failures = iter([rpc_error(grpc.StatusCode.UNAVAILABLE)])

    async def flaky(timeout: float) -> str:
        if (error := next(failures, None)) is not None:
            raise error
        return "ok"

    retrying = asyncio.create_task(guard.call(flaky, idempotent=True))
    await in_backoff.wait()
    with pytest.raises(BulkheadFull):
        await guard.call(flaky, idempotent=True)
    backoff_over.set()
    assert await retrying == "ok"


async def test_a_burst_of_concurrent_failures_opens_the_circuit_once_and_then_nothing_gets_through(
    dependency: str, clock: FakeClock
) -> None:
    guard = Guard(dependency, Policy(), clock=clock, sleep=clock.sleep)
    gate = asyncio.Event()
    sent = 0

    async def failing_when_released(timeout: float) -> str:
        nonlocal sent
        sent += 1
        await gate.wait()
        raise rpc_error(grpc.StatusCode.UNAVAILABLE)

    with capture_logs() as logs:
        burst = [asyncio.create_task(guard.call(failing_when_released, idempotent=False)) for _ in range(60)]
        await asyncio.sleep(0)
        assert sent == 60  # all sent while the circuit was still closed
        gate.set()
        results = await asyncio.gather(*burst, return_exceptions=True)
        assert all(isinstance(result, grpc.aio.AioRpcError) for result in results)
        for _ in range(100):
            with pytest.raises(BreakerOpen):
                await guard.call(failing_when_released, idempotent=True)
    assert sent == 60
    assert guard.breaker.state is BreakerState.OPEN
    assert [log["new"] for log in logs if log["event"] == "breaker_state_changed"] == ["OPEN"]


async def test_many_tasks_through_one_guard_keep_every_limit_and_every_count(dependency: str, clock: FakeClock) -> None:
    policy = Policy(
        retry=RetryPolicy(max_attempts=3),
        breaker=BreakerPolicy(window_size=100, minimum_calls=100, failure_rate_threshold=0.9),
        bulkhead=BulkheadPolicy(max_concurrent=8, max_queued=400),
    )
    guard = Guard(dependency, policy, clock=clock, sleep=clock.sleep, random=random.Random(7).random)
    outcomes = random.Random(11)
    running = peak = sent = 0

    async def sometimes_unavailable(timeout: float) -> str:
        nonlocal running, peak, sent
        sent += 1
        running += 1
        peak = max(peak, running)
        try:
            for _ in range(outcomes.randint(0, 3)):
                await asyncio.sleep(0)
            if outcomes.random() < 0.3:
                raise rpc_error(grpc.StatusCode.UNAVAILABLE)
            return "ok"
        finally:
            running -= 1

    calls = 400
    results = await asyncio.gather(
        *(guard.call(sometimes_unavailable, idempotent=True) for _ in range(calls)), return_exceptions=True
    )

    assert peak == policy.bulkhead.max_concurrent
    assert results.count("ok") > 0.8 * calls  # retries turned most failures into answers
    assert all(result == "ok" or isinstance(result, grpc.aio.AioRpcError) for result in results)
    assert metric("agora_resilience_attempts_total", dependency) == sent
    assert metric("agora_resilience_retries_total", dependency) == sent - calls
    reserve = policy.retry.budget_min_per_second * policy.retry.budget_window_seconds
    assert sent - calls <= policy.retry.budget_ratio * calls + reserve
    assert guard.bulkhead.queued == 0
