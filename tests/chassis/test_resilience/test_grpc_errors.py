import grpc
import pytest
from chassis.resilience import BreakerOpen, BulkheadFull, DeadlineExceeded
from chassis.resilience.grpc_errors import counts_as_failure, is_retryable
from resilience_fakes import rpc_error

FAILURES = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL", "UNKNOWN"}
RETRYABLE = {"UNAVAILABLE", "DEADLINE_EXCEEDED"}


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda code: code.name)
def test_only_codes_that_blame_the_dependency_count_as_failures(code: grpc.StatusCode) -> None:
    assert counts_as_failure(rpc_error(code)) is (code.name in FAILURES)
    assert is_retryable(rpc_error(code)) is (code.name in RETRYABLE)


def test_timeouts_and_broken_connections_blame_the_dependency() -> None:
    for error in (TimeoutError(), ConnectionResetError(), ConnectionRefusedError()):
        assert counts_as_failure(error) and is_retryable(error)


@pytest.mark.parametrize("error", [DeadlineExceeded(), BreakerOpen(), BulkheadFull()])
def test_our_own_refusals_neither_count_nor_retry(error: Exception) -> None:
    assert not counts_as_failure(error) and not is_retryable(error)


def test_ordinary_errors_and_odd_code_attributes_are_not_statuses() -> None:
    class WithCodeField(Exception):
        code = 503

    class WithCodeMethodNeedingArguments(Exception):
        def code(self, argument: int) -> int:
            return argument

    for error in (ValueError("bug"), WithCodeField(), WithCodeMethodNeedingArguments()):
        assert not counts_as_failure(error) and not is_retryable(error)
