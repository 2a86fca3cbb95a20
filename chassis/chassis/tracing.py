"""OpenTelemetry tracing with W3C Trace Context, exported over OTLP when configured.

Without `OTEL_EXPORTER_OTLP_ENDPOINT` spans are still created (so trace ids reach logs, response
headers and event headers) but nothing is exported.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def configure(service: str, instance: int = 0) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.instance.id": f"{service}-{instance}"})
    )
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def tracer(name: str = "agora") -> trace.Tracer:
    return trace.get_tracer(name)
