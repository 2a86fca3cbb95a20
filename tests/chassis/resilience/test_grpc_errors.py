import grpc
import pytest

from chassis.resilience import BreakerOpen, BulkheadFull, DeadlineExceeded, deadline_scope
from chassis.resilience.grpc_errors import UNAVAILABLE_DEPENDENCY_KEY, is_failure, is_retryable, unavailable_dependency

from .fakes import FakeClock, rpc_error

Code = grpc.StatusCode
FAILURES = {Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.RESOURCE_EXHAUSTED, Code.INTERNAL, Code.UNKNOWN}


@pytest.mark.parametrize("code", list(Code))
def test_only_the_codes_of_an_unwell_dependency_are_failures(code: grpc.StatusCode) -> None:
    assert is_failure(rpc_error(code)) is (code in FAILURES)


@pytest.mark.parametrize("code", list(Code))
def test_only_unavailable_cancelled_and_a_timed_out_attempt_are_retryable(code: grpc.StatusCode) -> None:
    assert is_retryable(rpc_error(code)) is (code in {Code.UNAVAILABLE, Code.CANCELLED, Code.DEADLINE_EXCEEDED})


def test_an_answer_for_a_dependency_behind_the_callee_is_neither_a_failure_nor_retryable() -> None:
    def answered(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
        naming_cart = grpc.aio.Metadata((UNAVAILABLE_DEPENDENCY_KEY, "cart"))
        return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), naming_cart, "cart is unavailable; try again")

    cart_down = answered(Code.UNAVAILABLE)
    assert unavailable_dependency(cart_down) == "cart"
    assert not is_failure(cart_down) and not is_retryable(cart_down)
    assert unavailable_dependency(rpc_error(Code.UNAVAILABLE)) is None
    # Only UNAVAILABLE speaks for a dependency: any other code is the callee's own answer.
    assert unavailable_dependency(answered(Code.INTERNAL)) is None and is_failure(answered(Code.INTERNAL))


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
