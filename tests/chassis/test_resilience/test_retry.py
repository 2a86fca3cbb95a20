import grpc
import pytest
from chassis.resilience import Retry, RetryBudget, backoff, deadline_scope
from chassis.resilience.grpc_errors import is_retryable
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from resilience_fakes import FakeClock, rpc_error

UNAVAILABLE = rpc_error(grpc.StatusCode.UNAVAILABLE)
INVALID_ARGUMENT = rpc_error(grpc.StatusCode.INVALID_ARGUMENT)

seconds = st.floats(min_value=1e-6, max_value=60.0, allow_nan=False)
draws = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@given(retry_number=st.integers(min_value=0, max_value=64), base=seconds, cap=seconds, draw=draws)
def test_backoff_is_a_draw_between_zero_and_the_capped_exponential(
    retry_number: int, base: float, cap: float, draw: float
) -> None:
    delay = backoff(retry_number, base=base, cap=cap, random=lambda: draw)
    assert 0.0 <= delay <= min(cap, base * 2**retry_number)
    assert delay == pytest.approx(draw * min(cap, base * 2**retry_number))


@given(retry_number=st.integers(min_value=0, max_value=10**6), base=seconds, cap=seconds)
def test_backoff_never_exceeds_the_cap_however_many_retries(retry_number: int, base: float, cap: float) -> None:
    assert 0.0 <= backoff(retry_number, base=base, cap=cap) <= cap


def test_full_jitter_spans_the_whole_range() -> None:
    delays = [backoff(3, base=0.01, cap=1.0) for _ in range(2000)]
    assert min(delays) < 0.01 and max(delays) > 0.07  # uniform over [0, 0.08]


def test_the_budget_allows_its_ratio_of_requests_plus_the_reserve(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.1, min_per_second=1.0, window_seconds=10.0, clock=clock)
    for _ in range(1000):
        budget.record_request()
    granted = sum(budget.try_withdraw() for _ in range(500))
    assert granted == 110  # 10% of 1000, plus 1 per second over 10 seconds


def test_the_budget_refills_as_old_retries_leave_the_window(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.0, min_per_second=1.0, window_seconds=10.0, clock=clock)
    assert sum(budget.try_withdraw() for _ in range(50)) == 10
    clock.advance(5.0)
    assert not budget.try_withdraw()
    clock.advance(5.0)
    assert sum(budget.try_withdraw() for _ in range(50)) == 10


def make_retry(clock: FakeClock, dependency: str, **overrides: object) -> Retry:
    settings: dict[str, object] = {
        "budget": RetryBudget(clock=clock),
        "is_retryable": is_retryable,
        "max_attempts": 3,
        "backoff_base_seconds": 0.025,
        "backoff_cap_seconds": 0.25,
        "sleep": clock.sleep,
        **overrides,
    }
    return Retry(dependency, **settings)  # type: ignore[arg-type]


class FakeServer:
    """Answers with the given errors in turn, then "ok"; counts what reaches it."""

    def __init__(self, *errors: Exception, always: Exception | None = None):
        self._errors = list(errors)
        self._always = always
        self.attempts = 0

    async def handle(self) -> str:
        self.attempts += 1
        if self._always is not None:
            raise self._always
        if self._errors:
            raise self._errors.pop(0)
        return "ok"


async def test_an_idempotent_call_is_retried_after_a_backoff_until_it_succeeds(
    clock: FakeClock, dependency: str
) -> None:
    server = FakeServer(UNAVAILABLE, UNAVAILABLE)
    retry = make_retry(clock, dependency, random=lambda: 1.0)
    assert await retry.run(server.handle, idempotent=True) == "ok"
    assert server.attempts == 3
    assert clock.slept == [0.025, 0.05]
    assert REGISTRY.get_sample_value("agora_resilience_retries_total", {"dependency": dependency}) == 2


async def test_attempts_stop_at_the_maximum_with_the_last_error(clock: FakeClock, dependency: str) -> None:
    server = FakeServer(always=UNAVAILABLE)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await make_retry(clock, dependency).run(server.handle, idempotent=True)
    assert raised.value is UNAVAILABLE
    assert server.attempts == 3


async def test_a_call_not_marked_idempotent_is_never_retried(clock: FakeClock, dependency: str) -> None:
    server = FakeServer(always=UNAVAILABLE)
    with pytest.raises(grpc.aio.AioRpcError):
        await make_retry(clock, dependency).run(server.handle, idempotent=False)
    assert server.attempts == 1
    assert clock.slept == []


async def test_an_error_that_retrying_cannot_fix_is_not_retried(clock: FakeClock, dependency: str) -> None:
    server = FakeServer(always=INVALID_ARGUMENT)
    with pytest.raises(grpc.aio.AioRpcError):
        await make_retry(clock, dependency).run(server.handle, idempotent=True)
    assert server.attempts == 1


async def test_no_retry_is_sent_after_the_deadline(clock: FakeClock, dependency: str) -> None:
    starts: list[float] = []

    async def slow_failure() -> None:
        starts.append(clock.now)
        clock.advance(min(0.04, deadline.remaining()))  # a call gives up at the deadline
        raise UNAVAILABLE

    retry = make_retry(clock, dependency, max_attempts=100, random=lambda: 1.0)
    with deadline_scope(0.3, clock=clock) as deadline, pytest.raises(grpc.aio.AioRpcError):
        assert deadline is not None
        await retry.run(slow_failure, idempotent=True)
    assert len(starts) > 1
    assert all(start < deadline.at for start in starts)
    assert clock.now <= deadline.at, "no backoff may sleep past the deadline"


async def test_a_dependency_that_always_fails_sees_at_most_ten_percent_more_attempts(
    clock: FakeClock, dependency: str
) -> None:
    retry = make_retry(clock, dependency)
    server = FakeServer(always=UNAVAILABLE)
    calls = 1000
    for _ in range(calls):
        with pytest.raises(grpc.aio.AioRpcError):
            await retry.run(server.handle, idempotent=True)
        clock.now -= sum(clock.slept)  # keep all calls inside one window: the worst case for the budget
        clock.slept.clear()
    reserve = 1.0 * 10.0
    assert calls < server.attempts <= 1.1 * calls + reserve
    exhausted = REGISTRY.get_sample_value(
        "agora_resilience_rejections_total", {"dependency": dependency, "reason": "retry_budget_exhausted"}
    )
    assert exhausted is not None and exhausted > 800


async def test_over_a_long_outage_the_budget_holds_in_every_window(clock: FakeClock, dependency: str) -> None:
    retry = make_retry(clock, dependency)
    server = FakeServer(always=UNAVAILABLE)
    calls, duration = 0, 60.0
    started = clock.now
    while clock.now - started < duration:
        with pytest.raises(grpc.aio.AioRpcError):
            await retry.run(server.handle, idempotent=True)
        calls += 1
        clock.advance(0.01)  # about 100 calls a second, plus the backoffs
    windows = duration / 10.0 + 1
    assert calls < server.attempts <= 1.1 * calls + 10.0 * windows
