import asyncio
from collections.abc import Callable

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chassis.resilience import (
    BreakerPolicy,
    BulkheadPolicy,
    Guard,
    Policy,
    RetryBudget,
    RetryPolicy,
    backoff,
    deadline_scope,
)
from chassis.resilience.retry import BUDGET_BUCKETS

from .fakes import FakeClock, metric, rpc_error

RETRY = RetryPolicy()


def guard_for(dependency: str, clock: FakeClock, *, sleep=None, random: Callable[[], float] = lambda: 0.5, **retry):  # type: ignore[no-untyped-def]
    """A guard whose breaker and bulkhead stay out of the way: these tests are about retries."""
    policy = Policy(
        retry=RetryPolicy(**retry),
        breaker=BreakerPolicy(window_size=10_000, minimum_calls=10_000),
        bulkhead=BulkheadPolicy(max_concurrent=10_000, max_queued=0),
    )
    return Guard(dependency, policy, clock=clock, sleep=sleep or clock.sleep, random=random)


class Failing:
    """A dependency that fails with `code` the first `failures` times (forever by default)."""

    def __init__(self, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE, failures: int | None = None):
        self.code = code
        self.failures = failures
        self.attempts = 0
        self.timeouts: list[float] = []

    async def __call__(self, timeout: float) -> str:
        self.attempts += 1
        self.timeouts.append(timeout)
        await asyncio.sleep(0)
        if self.failures is None or self.attempts <= self.failures:
            raise rpc_error(self.code)
        return "ok"


@given(
    retry_number=st.integers(min_value=0, max_value=10_000),
    base=st.floats(min_value=1e-6, max_value=10.0),
    cap=st.floats(min_value=1e-6, max_value=100.0),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_backoff_is_a_full_jitter_draw_within_the_exponential_ceiling(
    retry_number: int, base: float, cap: float, draw: float
) -> None:
    delay = backoff(retry_number, base=base, cap=cap, random=lambda: draw)
    ceiling = min(cap, base * 2.0 ** min(retry_number, 1000))
    assert 0.0 <= delay <= ceiling
    assert delay == pytest.approx(draw * ceiling)


@given(retry_number=st.integers(min_value=0, max_value=64))
def test_backoff_with_the_real_random_source_stays_in_range(retry_number: int) -> None:
    delay = backoff(retry_number, base=RETRY.backoff_base_seconds, cap=RETRY.backoff_cap_seconds)
    assert 0.0 <= delay <= min(RETRY.backoff_cap_seconds, RETRY.backoff_base_seconds * 2**retry_number)


def test_the_backoff_ceiling_doubles_until_the_cap() -> None:
    ceilings = [backoff(n, base=0.025, cap=0.5, random=lambda: 1.0) for n in range(7)]
    assert ceilings == pytest.approx([0.025, 0.05, 0.1, 0.2, 0.4, 0.5, 0.5])


def test_the_budget_allows_a_share_of_recent_requests_plus_a_reserve(clock: FakeClock) -> None:
    budget = RetryBudget(RetryPolicy(budget_ratio=0.1, budget_min_per_second=0.0), clock=clock)
    assert not budget.try_withdraw()
    for _ in range(100):
        budget.record_request()
    assert sum(budget.try_withdraw() for _ in range(50)) == 10

    quiet = RetryBudget(
        RetryPolicy(budget_ratio=0.1, budget_min_per_second=0.5, budget_window_seconds=10.0), clock=clock
    )
    quiet.record_request()
    assert sum(quiet.try_withdraw() for _ in range(50)) == 5  # 0.5/s over 10 s, even for one request


def test_the_budget_window_slides_so_old_requests_and_retries_stop_counting(clock: FakeClock) -> None:
    budget = RetryBudget(RetryPolicy(budget_ratio=0.1, budget_min_per_second=0.0), clock=clock)
    for _ in range(100):
        budget.record_request()
    assert sum(budget.try_withdraw() for _ in range(50)) == 10
    clock.advance(5.0)
    for _ in range(100):
        budget.record_request()
    assert sum(budget.try_withdraw() for _ in range(50)) == 10  # 200 requests earn 20, 10 spent
    clock.advance(5.0)  # the first 100 requests and their 10 retries have left the window
    assert sum(budget.try_withdraw() for _ in range(50)) == 0  # 100 requests earn 10, 10 still spent
    clock.advance(5.0)
    assert not budget.try_withdraw()  # nothing left in the window earns anything


def test_the_budget_holds_one_window_of_slices_however_long_no_call_fails(clock: FakeClock) -> None:
    # Requests are counted on every call but totalled only when a call fails: a day of healthy
    # traffic must not leave a day of slices behind.
    budget = RetryBudget(RetryPolicy(budget_window_seconds=10.0), clock=clock)
    for _ in range(86_400):
        budget.record_request()
        clock.advance(1.0)
    assert len(budget._requests._slices) <= BUDGET_BUCKETS


async def test_the_retry_budget_caps_load_on_an_always_failing_dependency(dependency: str, clock: FakeClock) -> None:
    guard = guard_for(dependency, clock, sleep=lambda _: asyncio.sleep(0))  # time stands still: one window
    dependency_down = Failing()
    calls = 1000

    results = await asyncio.gather(
        *(guard.call(dependency_down, idempotent=True) for _ in range(calls)), return_exceptions=True
    )

    assert all(isinstance(result, grpc.aio.AioRpcError) for result in results)
    reserve = RETRY.budget_min_per_second * RETRY.budget_window_seconds
    assert dependency_down.attempts <= (1 + RETRY.budget_ratio) * calls + reserve
    assert dependency_down.attempts > calls  # it did retry, up to the budget
    assert metric("agora_resilience_attempts_total", dependency) == dependency_down.attempts
    assert metric("agora_resilience_retries_total", dependency) == dependency_down.attempts - calls
    assert metric("agora_resilience_retry_budget_exhausted_total", dependency) > 0


async def test_a_failed_idempotent_call_is_retried_up_to_max_attempts_with_backoff(
    dependency: str, clock: FakeClock
) -> None:
    guard = guard_for(dependency, clock, random=lambda: 1.0)
    dependency_down = Failing()
    with pytest.raises(grpc.aio.AioRpcError):
        await guard.call(dependency_down, idempotent=True)
    assert dependency_down.attempts == RETRY.max_attempts
    assert clock.slept == pytest.approx([0.025, 0.05])


async def test_a_retry_that_succeeds_returns_the_answer(dependency: str, clock: FakeClock) -> None:
    guard = guard_for(dependency, clock)
    flaky = Failing(failures=1)
    assert await guard.call(flaky, idempotent=True) == "ok"
    assert flaky.attempts == 2
    assert metric("agora_resilience_retries_total", dependency) == 1


async def test_a_non_idempotent_call_is_never_retried(dependency: str, clock: FakeClock) -> None:
    guard = guard_for(dependency, clock)
    dependency_down = Failing()
    with pytest.raises(grpc.aio.AioRpcError):
        await guard.call(dependency_down, idempotent=False)
    assert dependency_down.attempts == 1
    assert clock.slept == []


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
    ],
)
async def test_a_non_retryable_error_is_not_retried(dependency: str, clock: FakeClock, code: grpc.StatusCode) -> None:
    guard = guard_for(dependency, clock)
    dependency_says_no = Failing(code)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await guard.call(dependency_says_no, idempotent=True)
    assert raised.value.code() is code
    assert dependency_says_no.attempts == 1


async def test_a_timed_out_attempt_is_retried_while_the_deadline_has_time_left(
    dependency: str, clock: FakeClock
) -> None:
    guard = guard_for(dependency, clock)
    slow_once = Failing(grpc.StatusCode.DEADLINE_EXCEEDED, failures=1)
    with deadline_scope(10.0, clock=clock):
        assert await guard.call(slow_once, idempotent=True) == "ok"
    assert slow_once.attempts == 2


async def test_no_retry_whose_backoff_would_end_past_the_deadline(dependency: str, clock: FakeClock) -> None:
    guard = guard_for(dependency, clock, random=lambda: 1.0)  # first backoff: 0.025 s
    dependency_down = Failing()
    with deadline_scope(0.02, clock=clock), pytest.raises(grpc.aio.AioRpcError):
        await guard.call(dependency_down, idempotent=True)
    assert dependency_down.attempts == 1
    assert clock.slept == []


async def test_a_retry_is_made_only_with_a_whole_attempts_time_before_the_deadline(
    dependency: str, clock: FakeClock
) -> None:
    """A last attempt cut short would time out with the caller's own deadline, and the caller's
    caller would blame the caller (and count it against its circuit) for its dependency."""
    guard = guard_for(dependency, clock, random=lambda: 1.0, max_attempts=10)

    async def slow_failure(timeout: float) -> str:
        timeouts.append(timeout)
        clock.advance(timeout)  # each attempt uses all the time it is given
        raise rpc_error(grpc.StatusCode.UNAVAILABLE)

    timeouts: list[float] = []
    started = clock()
    with deadline_scope(5.0, clock=clock), pytest.raises(grpc.aio.AioRpcError):
        await guard.call(slow_failure, idempotent=True)
    assert timeouts == [pytest.approx(2.0), pytest.approx(2.0)]  # then 0.975 s left: less than an attempt
    assert clock() - started == pytest.approx(4.025)

    timeouts.clear()
    with deadline_scope(1.5, clock=clock), pytest.raises(grpc.aio.AioRpcError):
        await guard.call(slow_failure, idempotent=True)
    assert timeouts == [pytest.approx(1.5)]  # a first attempt still gets what remains
