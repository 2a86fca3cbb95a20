"""One checkout is one trace: the trace context crosses the outbox, the broker and the consumer."""

from __future__ import annotations

import asyncpg
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chassis.messaging import Consumer, Envelope, OutboxRelay, PostgresInbox
from chassis.request_id import current_request_id, serving
from tests.chassis.messaging.support import THING_MADE, eventually, make_thing


def recording_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def test_the_handler_runs_in_a_span_that_continues_the_producers_trace(pool, bus) -> None:
    provider, exporter = recording_provider()
    seen: dict[str, object] = {}

    async def handler(event: Envelope, conn: asyncpg.Connection) -> None:
        seen["span"] = trace.get_current_span().get_span_context()
        seen["log_context"] = structlog.contextvars.get_contextvars()

    async def handled() -> bool:
        return "span" in seen

    async with (
        OutboxRelay(pool, bus, service="things"),
        Consumer("watcher", bus, PostgresInbox(pool), {THING_MADE: handler}),
    ):
        with provider.get_tracer("test").start_as_current_span("checkout") as checkout:
            event = await make_thing(pool, 1)
        await eventually(handled)

    producer = checkout.get_span_context()
    assert event.trace["traceparent"].split("-")[1] == format(producer.trace_id, "032x")
    [span] = [span for span in exporter.get_finished_spans() if span.name == "ThingMade process"]
    assert span.kind is SpanKind.CONSUMER
    assert span.context.trace_id == producer.trace_id
    assert span.parent is not None and span.parent.span_id == producer.span_id
    assert seen["span"] == span.context
    assert seen["log_context"] == {"event_id": event.id, "event_type": THING_MADE}


async def test_the_handler_serves_the_request_that_caused_the_event(pool, bus) -> None:
    """Its log lines name that request, and so do the calls it makes and the events it adds."""
    seen: dict[str, object] = {}

    async def handler(event: Envelope, conn: asyncpg.Connection) -> None:
        seen["request_id"] = current_request_id.get()
        seen["log_context"] = structlog.contextvars.get_contextvars()

    async def handled() -> bool:
        return "request_id" in seen

    async with (
        OutboxRelay(pool, bus, service="things"),
        Consumer("watcher", bus, PostgresInbox(pool), {THING_MADE: handler}),
    ):
        with serving("checkout-42"):
            event = await make_thing(pool, 1)
        await eventually(handled)

    assert seen["request_id"] == "checkout-42"
    assert seen["log_context"] == {"event_id": event.id, "event_type": THING_MADE, "request_id": "checkout-42"}
    assert current_request_id.get() is None
