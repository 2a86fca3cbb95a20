import asyncio

import grpc
import pytest
from chassis.resilience import (
    BreakerOpen,
    BreakerState,
    BulkheadFull,
    DeadlineExceeded,
    Guard,
    Policy,
    deadline_scope,
    load_policies,
)
from prometheus_client import REGISTRY
from resilience_fakes import FakeClock, rpc_error

UNAVAILABLE = rpc_error(grpc.StatusCode.UNAVAILABLE)


def policy(**overrides: object) -> Policy:
    return load_policies({"defaults": overrides}).defaults


def sample(name: str, dependency: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"dependency": dependency, **labels}) or 0.0


class FakeServer:
    """Fails the first `failures` attempts (or all), and records the timeout each was given."""

    def __init__(self, failures: int | None = None, error: Exception = UNAVAILABLE):
        self.failures = failures
        self.error = error
        self.timeouts: list[float] = []

    @property
    def attempts(self) -> int:
        return len(self.timeouts)

    async def handle(self, seconds: float) -> str:
        self.timeouts.append(seconds)
        await asyncio.sleep(0)
        if self.failures is None or self.attempts <= self.failures:
            raise self.error
        return "ok"


def guard(dependency: str, clock: FakeClock, **overrides: object) -> Guard:
    return Guard(dependency, policy(**overrides), clock=clock, sleep=clock.sleep)


async def test_each_attempt_gets_the_policy_timeout_shortened_to_what_remains(
    clock: FakeClock, dependency: str
) -> None:
    server = FakeServer(failures=1)
    calls = guard(dependency, clock, timeout_seconds=0.5)
    assert await calls.call(server.handle, idempotent=True) == "ok"
    with deadline_scope(0.2, clock=clock):
        await calls.call(FakeServer(failures=0).handle, idempotent=True)
        short = FakeServer(failures=0)
        await calls.call(short.handle, idempotent=True)
    assert server.timeouts == [0.5, 0.5]
    assert short.timeouts == [pytest.approx(0.2)]
    assert sample("agora_resilience_attempts_total", dependency) == 4
    assert sample("agora_resilience_retries_total", dependency) == 1


async def test_an_expired_deadline_is_refused_before_anything_else(clock: FakeClock, dependency: str) -> None:
    server = FakeServer(failures=0)
    calls = guard(dependency, clock)
    with deadline_scope(0.1, clock=clock):
        clock.advance(0.1)
        with pytest.raises(DeadlineExceeded):
            await calls.call(server.handle, idempotent=True)
    assert server.attempts == 0
    assert sample("agora_resilience_rejections_total", dependency, reason="deadline_exceeded") == 1


async def test_expired_work_is_refused_for_its_deadline_even_when_the_bulkhead_is_full(
    clock: FakeClock, dependency: str
) -> None:
    release = asyncio.Event()

    async def hang(_: float) -> None:
        await release.wait()

    calls = guard(dependency, clock, bulkhead={"max_concurrent": 1, "max_queued": 0})
    holder = asyncio.create_task(calls.call(hang, idempotent=True))
    await asyncio.sleep(0)
    with deadline_scope(0.0, clock=clock), pytest.raises(DeadlineExceeded):
        await calls.call(hang, idempotent=True)
    release.set()
    await holder


async def test_an_open_breaker_refuses_fast_and_the_gauge_follows_its_state(clock: FakeClock, dependency: str) -> None:
    server = FakeServer()
    calls = guard(dependency, clock, retry={"max_attempts": 1}, breaker={"minimum_calls": 5, "open_seconds": 5.0})
    assert sample("agora_breaker_state", dependency) == BreakerState.CLOSED
    for _ in range(5):
        with pytest.raises(grpc.aio.AioRpcError):
            await calls.call(server.handle, idempotent=True)
    assert sample("agora_breaker_state", dependency) == BreakerState.OPEN
    with pytest.raises(BreakerOpen):
        await calls.call(server.handle, idempotent=True)
    assert server.attempts == 5
    assert sample("agora_resilience_rejections_total", dependency, reason="breaker_open") == 1

    clock.advance(5.0)
    server.failures = 0
    for _ in range(3):
        await calls.call(server.handle, idempotent=True)
        if calls.breaker.state is BreakerState.HALF_OPEN:
            assert sample("agora_breaker_state", dependency) == BreakerState.HALF_OPEN
    assert sample("agora_breaker_state", dependency) == BreakerState.CLOSED


async def test_a_breaker_that_opens_mid_call_stops_the_retries(clock: FakeClock, dependency: str) -> None:
    server = FakeServer()
    calls = guard(dependency, clock, retry={"max_attempts": 5}, breaker={"minimum_calls": 2})
    with pytest.raises(BreakerOpen):
        await calls.call(server.handle, idempotent=True)
    assert server.attempts == 2


async def test_only_idempotent_calls_are_retried(clock: FakeClock, dependency: str) -> None:
    server = FakeServer()
    with pytest.raises(grpc.aio.AioRpcError):
        await guard(dependency, clock).call(server.handle, idempotent=False)
    assert server.attempts == 1


async def test_a_full_bulkhead_refuses_while_another_dependencys_guard_still_admits(
    clock: FakeClock, dependency: str
) -> None:
    release = asyncio.Event()

    async def hang(_: float) -> str:
        await release.wait()
        return "ok"

    slow = guard(dependency, clock, bulkhead={"max_concurrent": 2, "max_queued": 0})
    other = guard(dependency + "_other", clock, bulkhead={"max_concurrent": 2, "max_queued": 0})
    holders = [asyncio.create_task(slow.call(hang, idempotent=True)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(BulkheadFull):
        await slow.call(hang, idempotent=True)
    assert await other.call(FakeServer(failures=0).handle, idempotent=True) == "ok"
    assert sample("agora_resilience_rejections_total", dependency, reason="bulkhead_full") == 1
    release.set()
    assert await asyncio.gather(*holders) == ["ok", "ok"]


async def test_a_thousand_concurrent_calls_to_a_dead_dependency_add_at_most_ten_percent_retries(
    clock: FakeClock, dependency: str
) -> None:
    server = FakeServer()

    async def yield_only(_: float) -> None:
        await asyncio.sleep(0)  # fake time stands still: every call falls in one budget window

    calls = Guard(
        dependency,
        policy(breaker={"minimum_calls": 10**6}, bulkhead={"max_concurrent": 50, "max_queued": 1000}),
        clock=clock,
        sleep=yield_only,
    )
    results = await asyncio.gather(
        *(calls.call(server.handle, idempotent=True) for _ in range(1000)), return_exceptions=True
    )
    assert all(result is UNAVAILABLE for result in results)
    reserve = 1.0 * 10.0
    assert 1000 < server.attempts <= 1.1 * 1000 + reserve
    assert sample("agora_resilience_attempts_total", dependency) == server.attempts
    assert sample("agora_resilience_retries_total", dependency) == server.attempts - 1000
