"""What an upstream gRPC failure means to an HTTP client, decided in one place."""

from __future__ import annotations

import json
from typing import Any

import grpc

from chassis.http import Problem
from chassis.logs import get_logger
from chassis.resilience import BreakerOpen, BulkheadFull, DeadlineExceeded, ResilienceError
from chassis.resilience.grpc_errors import unavailable_dependency

log = get_logger(__name__)

FIELD_VIOLATIONS_KEY = "x-field-violations"

_CLIENT_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.OUT_OF_RANGE: 422,
}


def _field_violations(error: grpc.aio.AioRpcError) -> list[dict[str, str]] | None:
    for key, value in error.trailing_metadata() or ():
        if key == FIELD_VIOLATIONS_KEY:
            try:
                return [{"field": str(v["field"]), "message": str(v["message"])} for v in json.loads(value)]
            except (ValueError, KeyError, TypeError):
                return None
    return None


def as_problem(error: Exception, service: str) -> Problem:
    """Client mistakes keep their meaning (4xx); upstream trouble is 503 or 504, never a leak."""
    if isinstance(error, grpc.aio.AioRpcError):
        status = _CLIENT_ERRORS.get(error.code())
        if status is not None:
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return Problem(status, error.details() or "", errors=_field_violations(error), headers=headers)
        if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
            return Problem(504, f"{service} did not answer in time")
        if error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
            return Problem(503, f"{service} is overloaded; try again shortly", headers={"Retry-After": "1"})
        # The service answered, for one behind it that did not: name the one that is down.
        down = unavailable_dependency(error) or service
        return Problem(503, f"{down} is unavailable; try again shortly", headers={"Retry-After": "1"})
    if isinstance(error, DeadlineExceeded):
        return Problem(504, f"{service} did not answer in time")
    if isinstance(error, (BreakerOpen, BulkheadFull)):
        return Problem(503, f"{service} is unavailable; try again shortly", headers={"Retry-After": "1"})
    raise error


def running(service: str, stub: Any) -> Any:
    """The stub of a service the route needs; 503 when this city does not run it."""
    if stub is None:
        raise Problem(503, f"{service} is not running in this city", headers={"Retry-After": "5"})
    return stub


async def call(service: str, stub: Any, method: str, request: Any, *, timeout: float | None = None) -> Any:
    """One upstream call; failures become the problem the client should see."""
    running(service, stub)
    try:
        return await getattr(stub, method)(request, timeout=timeout)
    except (grpc.aio.AioRpcError, ResilienceError) as error:
        raise as_problem(error, service) from None


async def optional(service: str, stub: Any, method: str, request: Any) -> tuple[Any | None, bool]:
    """An optional part of an aggregated answer: (result or None, whether it degraded).

    NOT_FOUND is an answer (nothing there yet), not a degradation.
    """
    if stub is None:
        return None, True
    try:
        return await getattr(stub, method)(request), False
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            return None, False
        log.warning("optional_part_degraded", upstream=service, code=error.code().name)
        return None, True
    except ResilienceError as error:
        log.warning("optional_part_degraded", upstream=service, error=type(error).__name__)
        return None, True
