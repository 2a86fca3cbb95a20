"""Spans leave the process over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set: a real OTLP/gRPC
receiver on a free port stands in for the collector."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from chassis import tracing


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(self, request, context):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def collector() -> Iterator[tuple[Collector, int]]:
    received = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(received, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield received, port
    server.stop(grace=None)


def test_spans_are_exported_with_the_service_name_when_an_endpoint_is_set(
    collector: tuple[Collector, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    received, port = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")

    provider = tracing.configure("catalog", instance=1)
    with provider.get_tracer("test").start_as_current_span("ListProducts") as span:
        trace_id = span.get_span_context().trace_id
    assert provider.force_flush(timeout_millis=10_000)
    provider.shutdown()

    spans = [
        (resource_spans.resource, exported)
        for request in received.requests
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for exported in scope_spans.spans
    ]
    assert [exported.name for _, exported in spans] == ["ListProducts"]
    resource, exported = spans[0]
    assert int.from_bytes(exported.trace_id, "big") == trace_id
    attributes = {attribute.key: attribute.value.string_value for attribute in resource.attributes}
    assert attributes["service.name"] == "catalog" and attributes["service.instance.id"] == "catalog-1"


def test_without_an_endpoint_nothing_is_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)

    provider = tracing.configure("catalog")

    assert provider._active_span_processor._span_processors == ()
