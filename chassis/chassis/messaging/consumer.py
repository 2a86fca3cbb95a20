"""Consuming events: validate, claim in the inbox, handle, commit, and only then ack.

A handler that raises is retried with exponential backoff (the broker redelivers); after
`max_deliveries` the event goes to the dead-letter stream with its error. An event that can
never succeed (not JSON, unknown type, fails its schema) goes there at once. Either way the
consumer moves on: one bad event never blocks the others or crash-loops the service.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram

from chassis.logs import get_logger
from chassis.messaging import envelope as envelopes
from chassis.messaging.bus import Bus, Delivery, Subscription
from chassis.messaging.dlq import dead_letter
from chassis.messaging.inbox import Inbox

Handler = Callable[[envelopes.Event, Any], Awaitable[None]]

log = get_logger(__name__)
_tracer = trace.get_tracer("chassis.messaging")

consumed = Counter("agora_events_consumed_total", "Events consumed", ["consumer", "type", "outcome"])
handler_duration = Histogram(
    "agora_event_handler_duration_seconds", "Event handler duration", ["consumer", "type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)


def backoff_seconds(deliveries: int, *, base: float = 0.1, cap: float = 10.0) -> float:
    return min(cap, base * 2 ** max(0, deliveries - 1))


class Consumer:
    """One durable consumer per consuming service, fed by every producer it subscribes to."""

    def __init__(
        self, name: str, bus: Bus, inbox: Inbox, subscriptions: Mapping[str, Handler], *,
        max_deliveries: int = 8, concurrency: int = 16,
    ):
        self.name = name
        self._bus = bus
        self._inbox = inbox
        self._subscriptions = dict(subscriptions)
        self._max_deliveries = max_deliveries
        self._concurrency = concurrency
        self._running: list[Subscription] = []

    @property
    def producers(self) -> set[str]:
        return {event_type.split(".")[1] for event_type in self._subscriptions}

    async def start(self) -> None:
        for producer in sorted(self.producers):
            self._running.append(
                await self._bus.subscribe(self.name, producer, self.deliver, concurrency=self._concurrency)
            )

    async def stop(self) -> None:
        for subscription in self._running:
            await subscription.stop()
        self._running.clear()

    async def deliver(self, delivery: Delivery) -> None:
        try:
            event = envelopes.parse(delivery.body)
        except envelopes.MalformedEvent as error:
            await self._dead_letter(delivery, str(error), "malformed")
            return
        handler = self._subscriptions.get(event.type)
        if handler is None:  # another event of a producer we follow: not ours to handle
            await delivery.ack()
            return
        context = propagate.extract({"traceparent": event.traceparent} if event.traceparent else delivery.headers)
        structlog.contextvars.bind_contextvars(event_id=event.id, event_type=event.type)
        started = time.perf_counter()
        try:
            with _tracer.start_as_current_span(f"{self.name} handle {event.name}", context=context, kind=SpanKind.CONSUMER):
                async with self._inbox.claim(self.name, event) as tx:
                    outcome = "duplicate" if tx is None else "handled"
                    if tx is not None:
                        await handler(event, tx)
        except Exception as error:
            handler_duration.labels(self.name, event.type).observe(time.perf_counter() - started)
            if delivery.deliveries >= self._max_deliveries:
                log.error("event_dead_lettered", error=str(error), deliveries=delivery.deliveries)
                await self._dead_letter(delivery, f"{type(error).__name__}: {error}", "failed")
            else:
                delay = backoff_seconds(delivery.deliveries)
                log.warning("event_handler_failed", error=f"{type(error).__name__}: {error}",
                            deliveries=delivery.deliveries, retry_in=delay)
                consumed.labels(self.name, event.type, "retry").inc()
                await delivery.nak(delay)
            return
        finally:
            structlog.contextvars.unbind_contextvars("event_id", "event_type")
        handler_duration.labels(self.name, event.type).observe(time.perf_counter() - started)
        consumed.labels(self.name, event.type, outcome).inc()
        await delivery.ack()

    async def _dead_letter(self, delivery: Delivery, error: str, outcome: str) -> None:
        await dead_letter(self._bus, self.name, delivery, error)
        consumed.labels(self.name, delivery.headers.get("ce-type", "unknown"), outcome).inc()
        await delivery.ack()
