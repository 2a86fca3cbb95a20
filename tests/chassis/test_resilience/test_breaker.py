import asyncio

import grpc
import pytest
from chassis.resilience import BreakerOpen, BreakerState, CircuitBreaker, DeadlineExceeded
from chassis.resilience.grpc_errors import counts_as_failure
from resilience_fakes import FakeClock, rpc_error

UNAVAILABLE = rpc_error(grpc.StatusCode.UNAVAILABLE)
NOT_FOUND = rpc_error(grpc.StatusCode.NOT_FOUND)


def make_breaker(
    clock: FakeClock, **overrides: object
) -> tuple[CircuitBreaker, list[tuple[BreakerState, BreakerState]]]:
    changes: list[tuple[BreakerState, BreakerState]] = []
    settings: dict[str, object] = {
        "failure_rate_threshold": 0.5,
        "minimum_calls": 10,
        "window_seconds": 10.0,
        "open_seconds": 5.0,
        "half_open_probes": 3,
        **overrides,
    }
    breaker = CircuitBreaker(
        "catalog",
        is_failure=counts_as_failure,
        on_state_change=lambda _, old, new: changes.append((old, new)),
        clock=clock,
        **settings,  # type: ignore[arg-type]
    )
    return breaker, changes


async def outcome(breaker: CircuitBreaker, error: Exception | None = None) -> None:
    """One call through the breaker that succeeds, or fails with `error`."""

    async def dependency() -> str:
        if error is not None:
            raise error
        return "ok"

    try:
        await breaker.call(dependency)
    except Exception as raised:
        assert raised is error


async def trip(breaker: CircuitBreaker, failures: int = 10) -> None:
    for _ in range(failures):
        await outcome(breaker, UNAVAILABLE)
    assert breaker.state is BreakerState.OPEN


async def test_failures_below_the_minimum_number_of_calls_never_open_it(clock: FakeClock) -> None:
    breaker, changes = make_breaker(clock)
    for _ in range(9):
        await outcome(breaker, UNAVAILABLE)
    assert breaker.state is BreakerState.CLOSED
    await outcome(breaker, UNAVAILABLE)
    assert breaker.state is BreakerState.OPEN
    assert changes == [(BreakerState.CLOSED, BreakerState.OPEN)]


async def test_it_opens_exactly_when_the_failure_rate_reaches_the_threshold(clock: FakeClock) -> None:
    breaker, _ = make_breaker(clock)
    for _ in range(6):
        await outcome(breaker)
    for _ in range(5):
        await outcome(breaker, UNAVAILABLE)  # 5 of 11: below half
    assert breaker.state is BreakerState.CLOSED
    await outcome(breaker, UNAVAILABLE)  # 6 of 12
    assert breaker.state is BreakerState.OPEN


async def test_errors_that_are_not_failures_keep_it_closed(clock: FakeClock) -> None:
    breaker, _ = make_breaker(clock)
    for _ in range(50):
        await outcome(breaker, NOT_FOUND)
    assert breaker.state is BreakerState.CLOSED


async def test_our_own_refusals_say_nothing_about_the_dependency(clock: FakeClock) -> None:
    breaker, _ = make_breaker(clock)
    for _ in range(50):
        await outcome(breaker, DeadlineExceeded("ours"))
    for _ in range(9):
        await outcome(breaker, UNAVAILABLE)
    assert breaker.state is BreakerState.CLOSED
    await outcome(breaker, UNAVAILABLE)
    assert breaker.state is BreakerState.OPEN, "10 failures of 10 calls: the refusals were no calls"


async def test_failures_older_than_the_window_are_forgotten(clock: FakeClock) -> None:
    breaker, _ = make_breaker(clock)
    for _ in range(9):
        await outcome(breaker, UNAVAILABLE)
    clock.advance(10.0)
    await outcome(breaker, UNAVAILABLE)
    assert breaker.state is BreakerState.CLOSED


async def test_while_open_it_rejects_fast_without_calling_the_dependency(clock: FakeClock) -> None:
    breaker, _ = make_breaker(clock)
    await trip(breaker)
    calls = 0

    async def dependency() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    for _ in range(100):
        with pytest.raises(BreakerOpen):
            await breaker.call(dependency)
    clock.advance(4.999)
    with pytest.raises(BreakerOpen):
        await breaker.call(dependency)
    assert calls == 0


async def test_after_the_open_duration_it_lets_only_the_configured_probes_through(clock: FakeClock) -> None:
    breaker, changes = make_breaker(clock)
    await trip(breaker)
    clock.advance(5.0)
    assert breaker.state is BreakerState.HALF_OPEN
    release = asyncio.Event()
    inside = 0

    async def slow_probe() -> str:
        nonlocal inside
        inside += 1
        await release.wait()
        return "ok"

    tasks = [asyncio.create_task(breaker.call(slow_probe)) for _ in range(50)]
    await asyncio.sleep(0.01)
    rejected = [task for task in tasks if task.done()]
    assert inside == 3
    assert len(rejected) == 47
    assert all(isinstance(task.exception(), BreakerOpen) for task in rejected)
    release.set()
    assert await asyncio.gather(*(task for task in tasks if task not in rejected)) == ["ok"] * 3
    assert breaker.state is BreakerState.CLOSED
    assert changes == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


async def test_it_closes_only_when_every_probe_has_succeeded(clock: FakeClock) -> None:
    breaker, _ = make_breaker(clock)
    await trip(breaker)
    clock.advance(5.0)
    await outcome(breaker)
    await outcome(breaker)
    assert breaker.state is BreakerState.HALF_OPEN
    await outcome(breaker, NOT_FOUND)  # an answer, even "not found", proves the dependency is back
    assert breaker.state is BreakerState.CLOSED


async def test_a_failed_probe_reopens_it_for_another_full_open_duration(clock: FakeClock) -> None:
    breaker, changes = make_breaker(clock)
    await trip(breaker)
    clock.advance(5.0)
    await outcome(breaker)
    await outcome(breaker, UNAVAILABLE)
    assert breaker.state is BreakerState.OPEN
    clock.advance(4.9)
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert changes[-2:] == [
        (BreakerState.HALF_OPEN, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
    ]


async def test_a_cancelled_probe_gives_its_place_to_another(clock: FakeClock) -> None:
    breaker, _ = make_breaker(clock, half_open_probes=1)
    await trip(breaker)
    clock.advance(5.0)
    hang = asyncio.create_task(breaker.call(asyncio.Event().wait))
    await asyncio.sleep(0)
    with pytest.raises(BreakerOpen):
        await breaker.call(succeed)
    hang.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hang
    assert await breaker.call(succeed) == "ok"
    assert breaker.state is BreakerState.CLOSED


async def test_outcomes_of_calls_admitted_before_a_state_change_are_ignored(clock: FakeClock) -> None:
    breaker, _ = make_breaker(clock, half_open_probes=1)
    release = asyncio.Event()

    async def slow_success() -> str:
        await release.wait()
        return "ok"

    straggler = asyncio.create_task(breaker.call(slow_success))
    await asyncio.sleep(0)
    await trip(breaker)
    clock.advance(5.0)
    assert breaker.state is BreakerState.HALF_OPEN
    release.set()
    assert await straggler == "ok"
    assert breaker.state is BreakerState.HALF_OPEN, "a call sent before the trip is no probe"
    await outcome(breaker, UNAVAILABLE)
    assert breaker.state is BreakerState.OPEN


async def test_many_concurrent_callers_against_a_failing_dependency_trip_it_once(clock: FakeClock) -> None:
    breaker, changes = make_breaker(clock)
    sent = 0

    async def flaky() -> None:
        nonlocal sent
        sent += 1
        await asyncio.sleep(0)
        raise UNAVAILABLE

    results = await asyncio.gather(*(breaker.call(flaky) for _ in range(500)), return_exceptions=True)
    assert changes == [(BreakerState.CLOSED, BreakerState.OPEN)]
    assert sent == 500, "all 500 were admitted while the circuit was still closed"
    assert all(result is UNAVAILABLE for result in results)
    rejected = await asyncio.gather(*(breaker.call(flaky) for _ in range(500)), return_exceptions=True)
    assert sent == 500
    assert all(isinstance(result, BreakerOpen) for result in rejected)


def test_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("x", is_failure=counts_as_failure, failure_rate_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker("x", is_failure=counts_as_failure, half_open_probes=0)


async def succeed() -> str:
    return "ok"
