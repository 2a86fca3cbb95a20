"""Consuming events: validate, claim in the inbox, handle, commit, and only then ack.

A handler that raises is rolled back and redelivered with exponential backoff; on its
`max_deliveries`-th failure the event goes to dead letters with the error. A message that can
never succeed (not JSON, not a CloudEvent, a type without a schema, data its schema refuses, or
a handler that raises `PermanentFailure`) goes there at once. Either way the consumer moves on:
one bad event never blocks the others.

Concurrency: up to `concurrency` events are handled at once, but events about the same
aggregate (the CloudEvents `subject`) run one after another in the order the broker delivered
them. A retried event is redelivered later, so it may be overtaken by a newer event about the
same aggregate: handlers of events that must apply in order check the aggregate's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from chassis.logs import get_logger
from chassis.messaging import _metrics
from chassis.messaging.bus import (
    CONCURRENCY,
    EVENT_TYPE_HEADER,
    HANDLER_TIMEOUT_SECONDS,
    MAX_DELIVERIES,
    REPLAYED_FOR_HEADER,
    Bus,
    DeadLetter,
    Delivery,
    Subscription,
)
from chassis.messaging.envelope import Envelope, MalformedEvent
from chassis.messaging.inbox import Inbox
from chassis.request_id import EVENT_HEADER, serving

Handler = Callable[[Envelope, Any], Awaitable[None]]
"""`handler(event, tx)`: `tx` is the inbox's transaction (an asyncpg connection in Postgres)."""

log = get_logger(__name__)
_tracer = trace.get_tracer("chassis.messaging")


class PermanentFailure(Exception):
    """Raise from a handler when no retry can succeed (a mail server's 5xx for the address, say):
    the transaction rolls back and the event goes to dead letters at once, with this error."""


class Consumer:
    """A service's subscription table, run: `Consumer("payments", bus, inbox, {type: handler})`."""

    def __init__(
        self,
        name: str,
        bus: Bus,
        inbox: Inbox,
        handlers: Mapping[str, Handler],
        *,
        max_deliveries: int = MAX_DELIVERIES,
        concurrency: int = CONCURRENCY,
        retry_base_seconds: float = 0.5,
        retry_max_seconds: float = 300.0,
        handler_timeout_seconds: float = HANDLER_TIMEOUT_SECONDS,
    ):
        self.name = name
        self._bus = bus
        self._inbox = inbox
        self._handlers = dict(handlers)
        self._max_deliveries = max_deliveries
        self._concurrency = concurrency
        self._retry_base = retry_base_seconds
        self._retry_max = retry_max_seconds
        self._handler_timeout = handler_timeout_seconds
        self._subscription: Subscription | None = None
        self._tails: dict[str, asyncio.Future[None]] = {}

    async def start(self) -> None:
        self._subscription = await self._bus.subscribe(
            self.name,
            self._handlers,
            self._on_delivery,
            concurrency=self._concurrency,
            max_deliveries=self._max_deliveries,
        )

    async def stop(self) -> None:
        """Stops taking events and finishes the ones being handled."""
        if self._subscription is not None:
            await self._subscription.stop()
            self._subscription = None

    async def __aenter__(self) -> Consumer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def retry_delay(self, deliveries: int) -> float:
        return min(self._retry_max, self._retry_base * 2 ** (deliveries - 1))

    async def _on_delivery(self, delivery: Delivery) -> None:
        declared = delivery.headers.get(EVENT_TYPE_HEADER)
        replayed_for = delivery.headers.get(REPLAYED_FOR_HEADER)
        if replayed_for is not None and replayed_for != self.name:
            # Another consumer's dead letter, replayed: this one acked the event when it first came.
            await self._ignore(delivery, declared or "replayed")
            return
        if declared is not None and declared not in self._handlers:
            # Another event of a producer we follow, by the type its publisher declared: acked
            # unread, as a broker filtering on types would never have delivered it. Its consumers
            # parse and validate it, and dead-letter it if it is malformed.
            await self._ignore(delivery, declared)
            return
        try:
            event = Envelope.parse(delivery.body)
        except MalformedEvent as error:
            await self._dead_letter(delivery, None, f"malformed: {error}")
            return
        except Exception as error:  # parsing is a function of the bytes: retrying cannot help either
            await self._dead_letter(delivery, None, f"malformed: unreadable ({type(error).__name__}: {error})")
            return
        handler = self._handlers.get(event.type)
        if handler is None:  # declared as a type we handle, or not declared, but not one of them
            await self._ignore(delivery, event.type)
            return
        if delivery.deliveries > self._max_deliveries:
            # The last attempts ended without an answer (the process died, or outlived ack_wait).
            # Not queued behind its subject's other events: one of those may be what hangs.
            await self._dead_letter(delivery, event, f"no outcome after {self._max_deliveries} deliveries")
            return
        async with self._in_order(event.subject):
            # The handler serves the request that caused the event: its logs, calls and events say so.
            with (
                serving(delivery.headers.get(EVENT_HEADER)),
                structlog.contextvars.bound_contextvars(event_id=event.id, event_type=event.type),
            ):
                await self._handle(delivery, event, handler)

    async def _ignore(self, delivery: Delivery, event_type: str) -> None:
        _metrics.events_consumed.labels(self.name, event_type, "ignored").inc()
        with contextlib.suppress(Exception):  # unacked, it simply comes back to be ignored again
            await delivery.ack()

    async def _handle(self, delivery: Delivery, event: Envelope, handler: Handler) -> None:
        carrier = delivery.headers if "traceparent" in delivery.headers else event.trace
        started = time.perf_counter()
        with _tracer.start_as_current_span(
            f"{event.name} process",
            context=propagate.extract(carrier),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.operation": "process",
                "messaging.message.id": event.id,
                "messaging.consumer.group.name": self.name,
                "cloudevents.event_type": event.type,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                cut_off = asyncio.timeout(self._handler_timeout)
                try:
                    async with cut_off:
                        applied = await self._inbox.apply_once(self.name, event.id, lambda tx: handler(event, tx))
                except TimeoutError:
                    if not cut_off.expired():  # the handler's own, a database's or a mail server's
                        raise
                    raise TimeoutError(f"the handler ran longer than {self._handler_timeout:g} s") from None
            except Exception as error:
                _metrics.handler_duration.labels(self.name, event.type).observe(time.perf_counter() - started)
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, str(error)))
                await self._failed(delivery, event, error)
                return
        _metrics.handler_duration.labels(self.name, event.type).observe(time.perf_counter() - started)
        _metrics.events_consumed.labels(self.name, event.type, "applied" if applied else "duplicate").inc()
        try:
            await delivery.ack()
        except Exception as error:  # the effect is committed: a redelivery will find the inbox claim
            log.warning("event_ack_failed", error=str(error) or type(error).__name__)

    async def _failed(self, delivery: Delivery, event: Envelope, error: Exception) -> None:
        reason = f"{type(error).__name__}: {error}"
        if isinstance(error, PermanentFailure) or delivery.deliveries >= self._max_deliveries:
            await self._dead_letter(delivery, event, reason)
            return
        delay = self.retry_delay(delivery.deliveries)
        log.warning("event_handler_failed", error=reason, deliveries=delivery.deliveries, retry_in=delay)
        _metrics.events_consumed.labels(self.name, event.type, "retried").inc()
        with contextlib.suppress(Exception):  # unanswered, it comes back after ack_wait anyway
            await delivery.nak(delay)

    async def _dead_letter(self, delivery: Delivery, event: Envelope | None, error: str) -> None:
        event_type = event.type if event else delivery.headers.get(EVENT_TYPE_HEADER)
        letter = DeadLetter(
            consumer=self.name,
            origin=delivery.origin,
            message_ref=delivery.ref,
            error=error[:4000],
            deliveries=delivery.deliveries,
            dead_lettered_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            body=delivery.body,
            event_id=event.id if event else None,
            event_type=event_type,
        )
        try:
            await self._bus.dead_letter(letter)
        except Exception as failure:  # never ack what is not safely in dead letters
            log.error("dead_letter_failed", error=str(failure) or type(failure).__name__)
            with contextlib.suppress(Exception):
                await delivery.nak(self.retry_delay(delivery.deliveries))
            return
        log.error("event_dead_lettered", error=error, deliveries=delivery.deliveries, event_type=event_type)
        _metrics.dead_letters.labels(self.name, event_type or "unknown").inc()
        _metrics.events_consumed.labels(self.name, event_type or "unknown", "dead_lettered").inc()
        with contextlib.suppress(Exception):
            await delivery.ack()

    @contextlib.asynccontextmanager
    async def _in_order(self, key: str | None) -> AsyncIterator[None]:
        """Serializes events with the same key in arrival order. The tail is registered before
        the first await, so arrival order is the order deliveries were started in."""
        if key is None:
            yield
            return
        previous = self._tails.get(key)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[key] = done
        try:
            if previous is not None:
                await previous
            yield
        finally:
            done.set_result(None)
            if self._tails.get(key) is done:
                del self._tails[key]
