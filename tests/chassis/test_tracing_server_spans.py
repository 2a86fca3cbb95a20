"""Spans carry the same trace context whether or not anything records them."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import extract
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, TraceFlags

from chassis import tracing

CALLERS = {
    "no caller": {},
    "sampled caller": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    "unsampled caller": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"},
    "caller with state": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03",
                          "tracestate": "vendor=opaque"},
}


@pytest.fixture(autouse=True)
def no_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)


def use(provider: trace.TracerProvider, monkeypatch: pytest.MonkeyPatch) -> trace.Tracer:
    """`provider` as the process' own (the real one can be set only once per process)."""
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    return provider.get_tracer("test")


def context_of(span: trace.Span) -> tuple[int, int, int, str]:
    context = span.get_span_context()
    return context.trace_id, context.trace_flags, context.span_id, context.trace_state.to_header()


@pytest.mark.parametrize("headers", CALLERS.values(), ids=CALLERS.keys())
def test_without_a_span_processor_the_span_is_not_recorded_yet_carries_what_the_sdk_would_give(
    headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = extract(headers) if headers else Context()
    unrecorded = use(tracing.configure("edge"), monkeypatch).start_span("GET /x", parent, SpanKind.SERVER)
    recording = tracing.configure("edge")
    recording.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    recorded = use(recording, monkeypatch).start_span("GET /x", parent, SpanKind.SERVER)

    trace_id, flags, span_id, state = context_of(unrecorded)
    recorded_trace_id, recorded_flags, recorded_span_id, recorded_state = context_of(recorded)
    assert not unrecorded.is_recording() and unrecorded.get_span_context().is_valid
    assert recorded.is_recording() == bool(recorded_flags & TraceFlags.SAMPLED)  # an unsampled caller's stays so
    assert (flags, state) == (recorded_flags, recorded_state)
    assert span_id != recorded_span_id
    if headers:
        assert trace_id == recorded_trace_id == 0x0AF7651916CD43DD8448EB211C80319C
        assert span_id != 0xB7AD6B7169203331
    else:
        assert trace_id != recorded_trace_id


def test_once_a_processor_is_added_server_spans_are_recorded_and_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = tracing.configure("edge")
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    span = use(provider, monkeypatch).start_span(
        "GET /api/v1/products", extract(CALLERS["sampled caller"]), SpanKind.SERVER
    )
    span.end()

    [exported] = exporter.get_finished_spans()
    assert exported.name == "GET /api/v1/products" and exported.kind is SpanKind.SERVER
    assert exported.parent is not None and exported.parent.span_id == 0xB7AD6B7169203331


def test_a_provider_the_chassis_did_not_make_is_left_to_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    span = use(TracerProvider(), monkeypatch).start_span("GET /x", Context(), SpanKind.SERVER)

    assert span.is_recording()


def test_without_a_span_processor_spans_started_inside_a_span_continue_its_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    tracer = use(tracing.configure("orders"), monkeypatch)

    with tracer.start_as_current_span("orders/PlaceOrder", extract(CALLERS["sampled caller"]), SpanKind.SERVER) as server:
        with tracer.start_as_current_span("cart/GetCart", kind=SpanKind.CLIENT) as client:
            assert trace.get_current_span() is client
            event = tracer.start_span("publish OrderPlaced", kind=SpanKind.PRODUCER)

    spans = [server, client, event]
    assert not any(span.is_recording() for span in spans)
    assert {span.get_span_context().trace_id for span in spans} == {0x0AF7651916CD43DD8448EB211C80319C}
    assert len({span.get_span_context().span_id for span in spans}) == 3
    assert all(span.get_span_context().trace_flags & TraceFlags.SAMPLED for span in spans)
