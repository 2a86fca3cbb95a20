"""Prometheus metrics shared by every entry point: rate, errors and duration.

One registry per process (the default one). Entry points record into these families; the admin
HTTP server and the gateway expose them at `/metrics`.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

http_requests = Counter(
    "agora_http_requests_total", "HTTP requests served", ["service", "method", "route", "status"]
)
http_duration = Histogram(
    "agora_http_request_duration_seconds", "HTTP request duration", ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
)
grpc_server_requests = Counter(
    "agora_grpc_server_requests_total", "gRPC calls served", ["service", "method", "code"]
)
grpc_server_duration = Histogram(
    "agora_grpc_server_duration_seconds", "gRPC call duration, server side", ["service", "method"],
    buckets=LATENCY_BUCKETS,
)
grpc_client_requests = Counter(
    "agora_grpc_client_requests_total", "gRPC calls made", ["service", "target", "method", "code"]
)
grpc_client_duration = Histogram(
    "agora_grpc_client_duration_seconds", "gRPC call duration, client side", ["service", "target", "method"],
    buckets=LATENCY_BUCKETS,
)
periodic_job_failures = Counter(
    "agora_periodic_job_failures_total", "Housekeeping runs that raised", ["job"]
)


def http_recorder(service: str) -> Callable[[str, str, int, float], None]:
    """`record(method, route, status, seconds)` for one served request.

    Looking a label set up costs several times more than counting into it, so each set is looked
    up once and kept. The sets are as few as the families' own: methods, route templates and
    statuses.
    """
    children: dict[tuple[str, str, int], tuple[Callable[[], None], Callable[[float], None]]] = {}

    def record(method: str, route: str, status: int, seconds: float) -> None:
        child = children.get((method, route, status))
        if child is None:
            child = children[method, route, status] = (
                http_requests.labels(service, method, route, str(status)).inc,
                http_duration.labels(service, method, route).observe,
            )
        child[0]()
        child[1](seconds)

    return record


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
