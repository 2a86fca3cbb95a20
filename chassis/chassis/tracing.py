"""OpenTelemetry tracing with W3C Trace Context, exported over OTLP when configured.

Without `OTEL_EXPORTER_OTLP_ENDPOINT` nothing is exported, and every span is then a
non-recording one that still carries the trace context the SDK would have given it, so trace
ids reach logs, response headers, gRPC metadata and event headers all the same.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

# The flags a span takes from its parent under the default parent-based sampler: whether it is
# sampled, and whether its trace id is random (W3C Trace Context level 2).
_INHERITED_FLAGS = TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID


class _Provider(TracerProvider):
    """A tracer provider that knows whether anything receives its spans, and whose tracers skip
    building spans nothing would receive."""

    def __init__(self, **kwargs: object):
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.receives_spans = False

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self.receives_spans = True

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _Tracer(super().get_tracer(*args, **kwargs), self)


class _Tracer(trace.Tracer):
    """The SDK's tracer, except while nothing receives spans (no exporter, no processor added).

    The SDK would then build and time a whole span only to drop it, on every request, gRPC call
    and event, and that is most of what tracing costs. Instead the span is a non-recording one
    with the very ids and flags the SDK would have given it under its default sampler.
    """

    def __init__(self, sdk: trace.Tracer, provider: _Provider):
        self._sdk = sdk
        self._provider = provider

    def start_span(  # type: ignore[override]
        self, name: str, context: otel_context.Context | None = None, kind: SpanKind = SpanKind.INTERNAL,
        *args: Any, **kwargs: Any,
    ) -> trace.Span:
        provider = self._provider
        if provider.receives_spans or provider.sampler is not sampling.DEFAULT_ON:
            return self._sdk.start_span(name, context, kind, *args, **kwargs)
        return _unrecorded(provider, context)

    @contextlib.contextmanager  # type: ignore[override]
    def start_as_current_span(
        self, name: str, context: otel_context.Context | None = None, kind: SpanKind = SpanKind.INTERNAL,
        attributes: Any = None, links: Any = (), start_time: int | None = None, record_exception: bool = True,
        set_status_on_exception: bool = True, end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time, record_exception,
                               set_status_on_exception)
        with trace.use_span(span, end_on_exit=end_on_exit, record_exception=record_exception,
                            set_status_on_exception=set_status_on_exception) as current:
            yield current


def configure(service: str, instance: int = 0) -> TracerProvider:
    provider = _Provider(
        resource=Resource.create({"service.name": service, "service.instance.id": f"{service}-{instance}"})
    )
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def tracer(name: str = "agora") -> trace.Tracer:
    return trace.get_tracer(name)


def _unrecorded(provider: TracerProvider, parent: otel_context.Context | None) -> trace.Span:
    """A non-recording span continuing the trace of `parent` (the current context if None), or
    starting one: the ids and flags the SDK's default parent-based sampler would give."""
    ids = provider.id_generator
    caller = trace.get_current_span(parent).get_span_context()
    if caller.is_valid:
        return NonRecordingSpan(SpanContext(
            caller.trace_id, ids.generate_span_id(), is_remote=False,
            trace_flags=TraceFlags(caller.trace_flags & _INHERITED_FLAGS), trace_state=caller.trace_state,
        ))
    flags = TraceFlags.SAMPLED | (TraceFlags.RANDOM_TRACE_ID if ids.is_trace_id_random() else TraceFlags.DEFAULT)
    return NonRecordingSpan(SpanContext(
        ids.generate_trace_id(), ids.generate_span_id(), is_remote=False, trace_flags=TraceFlags(flags),
    ))
