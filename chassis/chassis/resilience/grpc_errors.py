"""Which gRPC errors say the dependency is unwell, and which may succeed if tried again.

The guard's defaults (`Policy.is_failure`, `Policy.is_retryable`); the only module of the
resilience package that knows about gRPC.
"""

from __future__ import annotations

import grpc

from chassis.resilience.deadline import remaining
from chassis.resilience.errors import ResilienceError

# The dependency could not answer: these count against its circuit. NOT_FOUND,
# INVALID_ARGUMENT and the like are answers from a healthy dependency.
FAILURE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)


# Set by a server that is well but could not reach a service behind it (`chassis.grpc.DependencyUnavailable`).
UNAVAILABLE_DEPENDENCY_KEY = "x-unavailable-dependency"


def unavailable_dependency(error: BaseException) -> str | None:
    """The service behind the called one that made it answer UNAVAILABLE, if it named one."""
    if not isinstance(error, grpc.aio.AioRpcError) or error.code() is not grpc.StatusCode.UNAVAILABLE:
        return None
    for key, value in error.trailing_metadata() or ():
        if key == UNAVAILABLE_DEPENDENCY_KEY:
            return str(value)
    return None


def is_failure(error: BaseException) -> bool:
    """A service that answered for a dependency of its own is well: its circuit stays closed, so a
    cart outage does not open orders' circuit and refuse the order pages that never need cart."""
    if isinstance(error, ResilienceError):
        return False
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code() in FAILURE_CODES and unavailable_dependency(error) is None
    return isinstance(error, TimeoutError)  # asyncio.TimeoutError is TimeoutError since 3.11


def is_retryable(error: BaseException) -> bool:
    """UNAVAILABLE always; a timed-out attempt only while the caller's deadline has time left.

    CANCELLED too: as an AioRpcError it comes from the other side (our own cancellation raises
    CancelledError), typically a server shutting down, which cancels the calls it had received
    but not yet started; a rolling restart must not turn those into failures.

    RESOURCE_EXHAUSTED never: an overloaded dependency needs less traffic, not more. Nor an answer
    for a dependency behind the called one: that hop has already retried it under its own policy,
    and retrying at every layer multiplies the attempts on the service that is down.
    """
    if isinstance(error, ResilienceError) or unavailable_dependency(error) is not None:
        return False
    if isinstance(error, grpc.aio.AioRpcError):
        if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            return True
        return error.code() is grpc.StatusCode.DEADLINE_EXCEEDED and _time_remains()
    return isinstance(error, TimeoutError) and _time_remains()


def _time_remains() -> bool:
    left = remaining()
    return left is None or left > 0.0
