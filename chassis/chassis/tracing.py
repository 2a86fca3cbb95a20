"""OpenTelemetry tracing with W3C Trace Context, exported over OTLP when configured.

Without `OTEL_EXPORTER_OTLP_ENDPOINT` spans are still created (so trace ids reach logs, response
headers and event headers) but nothing is exported; the edge's server spans are then
non-recording ones (`start_server_span`).
"""

from __future__ import annotations

import os

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

# The flags a span takes from its parent under the default parent-based sampler: whether it is
# sampled, and whether its trace id is random (W3C Trace Context level 2).
_INHERITED_FLAGS = TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID


class _Provider(TracerProvider):
    """A tracer provider that knows whether anything receives its spans."""

    def __init__(self, **kwargs: object):
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.receives_spans = False

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self.receives_spans = True


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


def start_server_span(tracer: trace.Tracer, name: str, parent: context.Context) -> trace.Span:
    """A SERVER span for one incoming request, continuing the caller's trace found in `parent`.

    While nothing receives spans (no exporter, no processor added), the SDK would build and
    time a whole span only to drop it, and that is most of what tracing costs per request.
    Then the span is a non-recording one with the very ids and flags the SDK would have given
    it under its default sampler, so response headers, logs and the next hops carry the same
    trace context either way.
    """
    provider = trace.get_tracer_provider()
    if (
        not isinstance(provider, _Provider)
        or provider.receives_spans
        or provider.sampler is not sampling.DEFAULT_ON
    ):
        return tracer.start_span(name, context=parent, kind=SpanKind.SERVER)
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
