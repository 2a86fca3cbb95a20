"""The id of the client request that a piece of work serves (`X-Request-Id` at the edge).

It travels with everything the request causes: every gRPC call (metadata `x-request-id`) and
every event (header `X-Request-Id`, beside the trace context), and every service binds it to its
log lines. So one id finds a checkout's lines in every service, from the edge through the saga,
as one trace id finds its spans.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import structlog

EVENT_HEADER = "X-Request-Id"

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


@contextlib.contextmanager
def serving(request_id: str | None) -> Iterator[None]:
    """Runs the block as work for `request_id` (none if None): its log lines name it, and its
    gRPC calls and events carry it on."""
    token = current_request_id.set(request_id)
    try:
        if request_id is None:
            yield
        else:
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                yield
    finally:
        current_request_id.reset(token)
