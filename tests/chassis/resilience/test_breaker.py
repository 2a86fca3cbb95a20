import asyncio

import grpc
import pytest
from structlog.testing import capture_logs

from chassis.resilience import BreakerOpen, BreakerPolicy, BreakerState, BulkheadFull, CircuitBreaker
from chassis.resilience.grpc_errors import is_failure

from .fakes import FakeClock, metric, rpc_error

POLICY = BreakerPolicy(
    window_size=20, minimum_calls=10, failure_rate_threshold=0.5, open_seconds=5.0, half_open_probes=2
)


async def succeed() -> str:
    return "ok"


async def fail() -> str:
    raise rpc_error(grpc.StatusCode.UNAVAILABLE)


async def run(breaker: CircuitBreaker, outcome=succeed, times: int = 1) -> None:  # type: ignore[no-untyped-def]
    for _ in range(times):
        try:
            await breaker.call(outcome)
        except grpc.aio.AioRpcError:
            pass


def gauge(dependency: str) -> float:
    return metric("agora_breaker_state", dependency)


@pytest.fixture
def breaker(dependency: str, clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(dependency, POLICY, is_failure=is_failure, clock=clock)


async def tripped(breaker: CircuitBreaker) -> CircuitBreaker:
    await run(breaker, fail, times=POLICY.minimum_calls)
    assert breaker.state is BreakerState.OPEN
    return breaker


async def test_failures_do_not_open_the_circuit_before_the_minimum_number_of_calls(breaker: CircuitBreaker) -> None:
    await run(breaker, fail, times=POLICY.minimum_calls - 1)
    assert breaker.state is BreakerState.CLOSED
    await run(breaker, fail)
    assert breaker.state is BreakerState.OPEN


async def test_the_circuit_opens_when_the_failure_rate_reaches_the_threshold(breaker: CircuitBreaker) -> None:
    await run(breaker, succeed, times=5)
    await run(breaker, fail, times=4)
    assert breaker.state is BreakerState.CLOSED  # 4 of 9: too few calls to judge
    await run(breaker, fail)
    assert breaker.state is BreakerState.OPEN  # 5 of 10 = 50%


async def test_a_failure_rate_below_the_threshold_keeps_the_circuit_closed(breaker: CircuitBreaker) -> None:
    for _ in range(10):  # 200 calls, 45% failing, interleaved
        await run(breaker, succeed, times=11)
        await run(breaker, fail, times=9)
    assert breaker.state is BreakerState.CLOSED


async def test_only_the_last_window_size_calls_are_judged(breaker: CircuitBreaker) -> None:
    await run(breaker, fail, times=9)
    await run(breaker, succeed, times=POLICY.window_size)  # the nine failures slide out
    await run(breaker, fail, times=9)
    assert breaker.state is BreakerState.CLOSED  # 9 of the last 20
    await run(breaker, fail)
    assert breaker.state is BreakerState.OPEN  # 10 of the last 20


async def test_answers_from_a_healthy_dependency_are_not_failures(breaker: CircuitBreaker) -> None:
    async def not_found() -> str:
        raise rpc_error(grpc.StatusCode.NOT_FOUND)

    for _ in range(3 * POLICY.window_size):
        with pytest.raises(grpc.aio.AioRpcError):
            await breaker.call(not_found)
    assert breaker.state is BreakerState.CLOSED


async def test_cancelled_calls_and_our_own_refusals_are_not_counted(breaker: CircuitBreaker) -> None:
    async def refused() -> str:
        raise BulkheadFull("not sent")

    async def hang() -> str:
        await asyncio.Event().wait()
        return "never"

    for _ in range(POLICY.window_size):
        with pytest.raises(BulkheadFull):
            await breaker.call(refused)
        task = asyncio.create_task(breaker.call(hang))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await run(breaker, fail, times=POLICY.minimum_calls - 1)
    assert breaker.state is BreakerState.CLOSED  # nine failures is all it has seen


async def test_an_open_circuit_refuses_at_once_without_calling(breaker: CircuitBreaker, dependency: str) -> None:
    await tripped(breaker)
    assert gauge(dependency) == 2
    calls = 0

    async def counted() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    for _ in range(100):
        with pytest.raises(BreakerOpen):
            await breaker.call(counted)
    assert calls == 0
    assert metric("agora_resilience_breaker_rejections_total", dependency) == 100


async def test_the_circuit_half_opens_only_after_the_open_duration(
    breaker: CircuitBreaker, clock: FakeClock, dependency: str
) -> None:
    await tripped(breaker)
    clock.advance(POLICY.open_seconds - 0.001)
    with pytest.raises(BreakerOpen):
        await breaker.call(succeed)
    clock.advance(0.001)
    assert breaker.state is BreakerState.HALF_OPEN
    assert gauge(dependency) == 1


async def test_half_open_lets_through_only_the_allowed_probes_however_many_tasks_ask(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    await tripped(breaker)
    clock.advance(POLICY.open_seconds)
    release = asyncio.Event()
    probes_started = 0

    async def slow_probe() -> str:
        nonlocal probes_started
        probes_started += 1
        await release.wait()
        return "ok"

    tasks = [asyncio.create_task(breaker.call(slow_probe)) for _ in range(50)]
    await asyncio.sleep(0.01)
    assert probes_started == POLICY.half_open_probes
    refused = [task for task in tasks if task.done()]
    assert len(refused) == 50 - POLICY.half_open_probes
    assert all(isinstance(task.exception(), BreakerOpen) for task in refused)

    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results.count("ok") == POLICY.half_open_probes
    assert breaker.state is BreakerState.CLOSED


async def test_enough_successful_probes_close_the_circuit_with_a_clean_window(
    breaker: CircuitBreaker, clock: FakeClock, dependency: str
) -> None:
    await tripped(breaker)
    clock.advance(POLICY.open_seconds)
    await run(breaker, succeed)
    assert breaker.state is BreakerState.HALF_OPEN  # one of two
    await run(breaker, succeed)
    assert breaker.state is BreakerState.CLOSED
    assert gauge(dependency) == 0
    await run(breaker, fail, times=POLICY.minimum_calls - 1)
    assert breaker.state is BreakerState.CLOSED  # the failures before it opened are forgotten


async def test_probes_their_callers_gave_up_on_free_their_places(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """Common in an outage: a probe's caller runs out of its own deadline. Were its place kept,
    the circuit would stay half-open and refuse every call for good."""
    await tripped(breaker)
    clock.advance(POLICY.open_seconds)

    async def hang() -> str:
        await asyncio.Event().wait()
        return "never"

    probes = [asyncio.create_task(breaker.call(hang)) for _ in range(POLICY.half_open_probes)]
    await asyncio.sleep(0)
    with pytest.raises(BreakerOpen):
        await breaker.call(succeed)  # every probe's place is taken
    for probe in probes:
        probe.cancel()
    await asyncio.gather(*probes, return_exceptions=True)

    await run(breaker, succeed, times=POLICY.half_open_probes)
    assert breaker.state is BreakerState.CLOSED


async def test_a_failed_probe_reopens_the_circuit_for_another_open_duration(
    breaker: CircuitBreaker, clock: FakeClock, dependency: str
) -> None:
    await tripped(breaker)
    clock.advance(POLICY.open_seconds)
    await run(breaker, succeed)
    await run(breaker, fail)
    assert breaker.state is BreakerState.OPEN
    assert gauge(dependency) == 2
    clock.advance(POLICY.open_seconds - 0.001)
    with pytest.raises(BreakerOpen):
        await breaker.call(succeed)
    clock.advance(0.001)
    assert breaker.state is BreakerState.HALF_OPEN


async def test_a_call_sent_before_the_circuit_opened_does_not_count_as_a_probe(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    release = asyncio.Event()

    async def slow_success() -> str:
        await release.wait()
        return "ok"

    straggler = asyncio.create_task(breaker.call(slow_success))
    await asyncio.sleep(0)
    await tripped(breaker)
    clock.advance(POLICY.open_seconds)
    assert breaker.state is BreakerState.HALF_OPEN
    release.set()
    assert await straggler == "ok"
    await run(breaker, succeed)
    assert breaker.state is BreakerState.HALF_OPEN  # one real probe so far, not two


async def test_every_state_change_is_logged(breaker: CircuitBreaker, clock: FakeClock, dependency: str) -> None:
    with capture_logs() as logs:
        await tripped(breaker)
        clock.advance(POLICY.open_seconds)
        await run(breaker, succeed, times=POLICY.half_open_probes)
    changes = [(log["old"], log["new"]) for log in logs if log["event"] == "breaker_state_changed"]
    assert changes == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]
    assert all(log["dependency"] == dependency for log in logs if log["event"] == "breaker_state_changed")
