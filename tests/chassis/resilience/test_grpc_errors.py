import grpc
import pytest

from chassis.resilience import BreakerOpen, BulkheadFull, DeadlineExceeded, deadline_scope
from chassis.resilience.grpc_errors import is_failure, is_retryable

from .fakes import FakeClock, rpc_error

Code = grpc.StatusCode
FAILURES = {Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.RESOURCE_EXHAUSTED, Code.INTERNAL, Code.UNKNOWN}


@pytest.mark.parametrize("code", list(Code))
def test_only_the_codes_of_an_unwell_dependency_are_failures(code: grpc.StatusCode) -> None:
    assert is_failure(rpc_error(code)) is (code in FAILURES)


@pytest.mark.parametrize("code", list(Code))
def test_only_unavailable_cancelled_and_a_timed_out_attempt_are_retryable(code: grpc.StatusCode) -> None:
    assert is_retryable(rpc_error(code)) is (code in {Code.UNAVAILABLE, Code.CANCELLED, Code.DEADLINE_EXCEEDED})


def test_a_timed_out_attempt_is_not_retryable_once_the_deadline_has_passed(clock: FakeClock) -> None:
    with deadline_scope(1.0, clock=clock):
        assert is_retryable(rpc_error(Code.DEADLINE_EXCEEDED))
        assert is_retryable(TimeoutError())
        clock.advance(1.0)
        assert not is_retryable(rpc_error(Code.DEADLINE_EXCEEDED))
        assert not is_retryable(TimeoutError())
        assert is_retryable(rpc_error(Code.UNAVAILABLE))  # the guard still stops at the deadline


def test_a_local_timeout_is_a_failure_but_our_own_refusals_and_plain_bugs_are_not() -> None:
    assert is_failure(TimeoutError())
    for refusal in (DeadlineExceeded(), BreakerOpen(), BulkheadFull()):
        assert not is_failure(refusal) and not is_retryable(refusal)
    assert not is_failure(ValueError("a bug of ours")) and not is_retryable(ValueError("a bug of ours"))
