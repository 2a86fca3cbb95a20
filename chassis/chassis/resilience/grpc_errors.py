"""Which gRPC errors say the dependency is unwell, and which may succeed if tried again.

The status is read by duck typing (`error.code().name`), so this module needs no grpc import
and also works for anything else that carries a gRPC-style status.
"""

from __future__ import annotations

from chassis.resilience.errors import ResilienceError

# The dependency could not answer: these count against its circuit.
FAILURE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL", "UNKNOWN"})
# Transient for this attempt: another replica, or the same one a moment later, may answer.
# RESOURCE_EXHAUSTED is left out on purpose: an overloaded dependency needs less traffic.
RETRYABLE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})


def status_name(error: BaseException) -> str | None:
    code = getattr(error, "code", None)
    if not callable(code):
        return None
    try:
        return getattr(code(), "name", None)
    except Exception:  # a `code()` that is not gRPC's may want arguments; then it is not a status
        return None


def counts_as_failure(error: BaseException) -> bool:
    if isinstance(error, ResilienceError):
        return False
    name = status_name(error)
    if name is not None:
        return name in FAILURE_CODES
    return isinstance(error, TimeoutError | ConnectionError)


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, ResilienceError):
        return False
    name = status_name(error)
    if name is not None:
        return name in RETRYABLE_CODES
    return isinstance(error, TimeoutError | ConnectionError)
