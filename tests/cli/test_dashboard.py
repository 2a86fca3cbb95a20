"""`agora dashboard`'s arithmetic, on hand-made samples: rates from two scrapes (a restart between
them included), p99 from bucket deltas, the verdict; and its reading of instances that do not
answer. The whole command against a real city is tests/e2e/test_dashboard.py."""

from __future__ import annotations

import asyncio
import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from agora_cli.dashboard import Instance, Row, increase, parse, quantile, read_city, summarize, verdict, with_callers
from tests.cli.conftest import City, free_port

INF = math.inf
BUCKETS = (0.01, 0.1, 1.0)


def samples(*entries: tuple[str, dict[str, str], float]) -> dict:
    return {(name, tuple(sorted(labels.items()))): value for name, labels, value in entries}


def started(at: float) -> tuple[str, dict[str, str], float]:
    return ("process_start_time_seconds", {}, at)


def grpc_calls(code: str, count: float, method: str = "GetProduct") -> tuple[str, dict[str, str], float]:
    return ("agora_grpc_server_requests_total", {"service": "catalog", "method": method, "code": code}, count)


def grpc_buckets(*counts: float, method: str = "GetProduct") -> list[tuple[str, dict[str, str], float]]:
    """Cumulative counts for the bounds 10 ms, 100 ms, 1 s and +Inf."""
    return [
        ("agora_grpc_server_duration_seconds_bucket", {"service": "catalog", "method": method, "le": str(le)}, count)
        for le, count in zip((*BUCKETS, "+Inf"), counts, strict=True)
    ]


OK_CALLS = next(iter(samples(grpc_calls("OK", 0))))


def row(**changes) -> Row:
    healthy = dict(
        service="catalog", protocol="grpc", instances=1, ready=1, down=0, requests_per_second=10.0,
        failed_share=0.0, p99_seconds=0.02, events_per_second=0.0, event_failures_per_second=0.0,
        dead_letters=0, outbox_unpublished=0, outbox_oldest_seconds=0.0,
    )  # fmt: skip
    return Row(**{**healthy, **changes})


# --- parsing ---------------------------------------------------------------------------------


def test_the_exposition_is_read_into_samples_without_created_timestamps() -> None:
    registry = CollectorRegistry()
    Counter("agora_http_requests", "served", ["route", "status"], registry=registry).labels("/a", "200").inc(3)
    Histogram("agora_http_request_duration_seconds", "took", ["route"], buckets=BUCKETS, registry=registry).labels(
        "/a"
    ).observe(0.05)
    Gauge("agora_outbox_unpublished", "behind", ["service"], registry=registry).labels("orders").set(7)

    read = parse(generate_latest(registry).decode())

    assert read[("agora_http_requests_total", (("route", "/a"), ("status", "200")))] == 3
    assert read[("agora_http_request_duration_seconds_bucket", (("le", "0.1"), ("route", "/a")))] == 1
    assert read[("agora_http_request_duration_seconds_bucket", (("le", "0.01"), ("route", "/a")))] == 0
    assert read[("agora_outbox_unpublished", (("service", "orders"),))] == 7
    assert not [name for name, _ in read if name.endswith("_created")]


# --- counters over the interval --------------------------------------------------------------


def test_a_counter_grows_by_its_difference() -> None:
    before = samples(started(100), grpc_calls("OK", 40))
    after = samples(started(100), grpc_calls("OK", 70), grpc_calls("NOT_FOUND", 2))

    grown = increase(before, after)

    assert grown[OK_CALLS] == 30
    assert grown[next(iter(samples(grpc_calls("NOT_FOUND", 0))))] == 2


def test_a_process_restarted_between_the_scrapes_counted_everything_since_its_start() -> None:
    # After the restart the counter (50) is above what the old process had (40): without the
    # start time, the rate would be 10, not the 50 calls the new process served.
    before = samples(started(100), grpc_calls("OK", 40))
    after = samples(started(105), grpc_calls("OK", 50))

    grown = increase(before, after)

    assert grown[OK_CALLS] == 50


def test_a_counter_lower_than_before_was_reset_and_grew_from_zero() -> None:
    before = samples(grpc_calls("OK", 40))
    after = samples(grpc_calls("OK", 6))

    assert increase(before, after)[OK_CALLS] == 6


def test_rates_are_per_second_and_summed_over_instances_and_a_restart_does_not_go_negative() -> None:
    steady = Instance(
        before=samples(started(1), grpc_calls("OK", 100), grpc_calls("UNAVAILABLE", 0)),
        after=samples(started(1), grpc_calls("OK", 116), grpc_calls("UNAVAILABLE", 4)),
        seconds=2.0,
        ready=True,
    )
    restarted = Instance(
        before=samples(started(1), grpc_calls("OK", 900)),
        after=samples(started(9), grpc_calls("OK", 20)),
        seconds=2.0,
        ready=True,
    )

    summed = summarize("catalog", [steady, restarted], edge=False)

    assert summed.requests_per_second == pytest.approx((16 + 4) / 2 + 20 / 2)
    assert summed.failed_share == pytest.approx(2 / 20)
    assert summed.ready == 2 and summed.down == 0


def test_only_the_services_own_faults_count_as_failed() -> None:
    codes = {"OK": 50, "NOT_FOUND": 20, "INVALID_ARGUMENT": 10, "CANCELLED": 5, "UNAUTHENTICATED": 5,
             "UNAVAILABLE": 4, "INTERNAL": 3, "UNKNOWN": 1, "DEADLINE_EXCEEDED": 1, "DATA_LOSS": 1}  # fmt: skip
    instance = Instance(
        before=samples(*(grpc_calls(code, 0) for code in codes)),
        after=samples(*(grpc_calls(code, count) for code, count in codes.items())),
        seconds=1.0,
        ready=True,
    )

    assert summarize("catalog", [instance], edge=False).failed_share == pytest.approx(10 / 100)


def test_at_the_edge_5xx_fail_and_the_operators_probes_are_not_traffic() -> None:
    def http(route: str, status: str, count: float) -> tuple[str, dict[str, str], float]:
        return ("agora_http_requests_total", {"method": "GET", "route": route, "status": status}, count)

    before = samples(http("/api/v1/products", "200", 0), http("/api/v1/products", "503", 0), http("/metrics", "200", 0))
    after = samples(
        http("/api/v1/products", "200", 6),
        http("/api/v1/products", "503", 2),
        http("/api/v1/orders", "404", 2),
        http("/metrics", "200", 500),
        http("/readyz", "503", 500),
    )

    summed = summarize("gateway", [Instance(before, after, seconds=2.0, ready=True)], edge=True)

    assert summed.protocol == "http"
    assert summed.requests_per_second == pytest.approx(5.0)
    assert summed.failed_share == pytest.approx(0.2)
    assert verdict(summed) == "5xx 20%"


def test_events_handled_retried_and_dead_lettered() -> None:
    def consumed(outcome: str, count: float) -> tuple[str, dict[str, str], float]:
        return ("agora_events_consumed_total", {"consumer": "orders", "event_type": "x", "outcome": outcome}, count)

    outcomes = ("applied", "duplicate", "ignored", "retried", "dead_lettered")
    before = samples(*(consumed(outcome, 0) for outcome in outcomes))
    after = samples(
        *(consumed(outcome, count) for outcome, count in zip(outcomes, (10, 2, 2, 4, 2), strict=True)),
        ("agora_dead_letters_total", {"consumer": "orders", "event_type": "x"}, 3),
    )

    summed = summarize("orders", [Instance(before, after, seconds=2.0, ready=True)], edge=False)

    assert summed.events_per_second == pytest.approx((10 + 2 + 2 + 2) / 2)
    assert summed.event_failures_per_second == pytest.approx((4 + 2) / 2)
    assert summed.dead_letters == 3
    assert verdict(summed) == "events failing 3.0/s; 3 dead letters"


# --- p99 -------------------------------------------------------------------------------------


def test_p99_interpolates_within_the_bucket_its_rank_falls_in() -> None:
    # 100 calls: 90 under 10 ms, 8 more under 100 ms, 2 under 1 s. Rank 99 is the first of the
    # two in (0.1, 1]: halfway through that bucket's count.
    assert quantile(0.99, {0.01: 90, 0.1: 98, 1.0: 100, INF: 100}) == pytest.approx(0.1 + 0.9 * 0.5)


def test_p99_in_the_infinite_bucket_is_the_highest_finite_bound() -> None:
    assert quantile(0.99, {0.01: 0, 0.1: 0, 1.0: 0, INF: 10}) == 1.0


def test_an_empty_histogram_has_no_p99() -> None:
    assert quantile(0.99, {0.01: 0, 0.1: 0, 1.0: 0, INF: 0}) is None
    assert quantile(0.99, {}) is None


def test_p99_is_of_the_interval_only_from_bucket_deltas_over_methods_and_instances() -> None:
    # Slow calls before the interval (the 1 000 in (0.1, 1]) must not show; in it, 100 fast
    # calls on one instance and method and 100 on another.
    old = grpc_buckets(0, 0, 1000, 1000)
    first = Instance(samples(started(1), *old), samples(started(1), *grpc_buckets(100, 100, 1100, 1100)), 2.0, True)
    second = Instance(
        samples(started(1), *grpc_buckets(0, 0, 0, 0, method="ListProducts")),
        samples(started(1), *grpc_buckets(90, 100, 100, 100, method="ListProducts")),
        2.0,
        True,
    )

    summed = summarize("catalog", [first, second], edge=False)

    assert summed.p99_seconds == pytest.approx(0.01 + 0.09 * (198 - 190) / (200 - 190))


def test_a_histogram_reset_in_some_buckets_only_does_not_break_p99() -> None:
    # The +Inf bucket went down (reset), the lower ones up: deltas that would not be cumulative.
    before = samples(*grpc_buckets(3, 3, 3, 100))
    after = samples(*grpc_buckets(5, 5, 5, 5))

    p99 = summarize("catalog", [Instance(before, after, 1.0, True)], edge=False).p99_seconds

    assert p99 is not None and 0 < p99 <= 1.0


def test_a_service_with_no_calls_in_the_interval_has_no_p99_and_no_failed_share() -> None:
    quiet = samples(started(1), grpc_calls("OK", 5), *grpc_buckets(5, 5, 5, 5))

    summed = summarize("catalog", [Instance(quiet, quiet, 2.0, True)], edge=False)

    assert summed.requests_per_second == 0 and summed.p99_seconds is None and summed.failed_share is None
    assert verdict(summed) == "ok"


# --- instances that do not answer ------------------------------------------------------------


def test_an_instance_that_did_not_answer_is_down_and_the_others_still_count() -> None:
    answering = Instance(samples(grpc_calls("OK", 0)), samples(grpc_calls("OK", 10)), 1.0, True)
    silent = Instance(None, None, 0.0, False)

    summed = summarize("catalog", [answering, silent], edge=False)

    assert (summed.instances, summed.ready, summed.down) == (2, 1, 1)
    assert summed.requests_per_second == 10
    assert verdict(summed) == "1 of 2 down"


def test_an_instance_read_only_once_gives_gauges_but_no_rates() -> None:
    back = Instance(None, samples(grpc_calls("OK", 10_000), ("agora_outbox_unpublished", {}, 3)), 0.0, True)

    summed = summarize("orders", [back], edge=False)

    assert summed.requests_per_second is None and summed.events_per_second is None
    assert summed.outbox_unpublished == 3 and summed.down == 0


def test_a_service_none_of_whose_instances_answer_is_down() -> None:
    summed = summarize("catalog", [Instance(None, None, 0.0, False)], edge=False)

    assert verdict(summed) == "down"


async def test_reading_the_city_gives_none_for_a_closed_port_or_an_answer_that_is_not_metrics() -> None:
    async def serve(answer: bytes) -> tuple[asyncio.Server, int]:
        async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(reply, "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    metrics, metrics_port = await serve(b"HTTP/1.0 200 OK\r\n\r\nagora_outbox_unpublished 2\n")
    garbage, garbage_port = await serve(b"HTTP/1.0 200 OK\r\n\r\n{not: prometheus}}\n")
    failing, failing_port = await serve(b"HTTP/1.0 500 Internal Server Error\r\n\r\nagora_outbox_unpublished 2\n")
    entries = [
        {"name": "a", "instance": 0, "http": f"127.0.0.1:{metrics_port}"},
        {"name": "b", "instance": 0, "http": f"127.0.0.1:{garbage_port}"},
        {"name": "c", "instance": 0, "http": f"127.0.0.1:{failing_port}"},
        {"name": "d", "instance": 0, "http": f"127.0.0.1:{free_port()}"},
        {"name": "e", "instance": 0, "http": f"127.0.0.1:{metrics_port}", "stopped": True},
    ]
    async with metrics, garbage, failing:
        read = await read_city({"services": entries})

    assert read[("a", 0)].samples == {("agora_outbox_unpublished", ()): 2.0}
    assert [read[(name, 0)].samples for name in "bcde"] == [None, None, None, None]


# --- the verdict -----------------------------------------------------------------------------


def test_a_healthy_service_is_ok() -> None:
    assert verdict(row()) == "ok"


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"ready": 0}, "not ready"),
        ({"instances": 3, "ready": 2}, "1 of 3 not ready"),
        ({"instances": 2, "ready": 0, "down": 1}, "1 of 2 down; not ready"),
        ({"protocol": "http", "failed_share": 0.12}, "5xx 12%"),
        ({"failed_share": 0.004}, "ok"),
        ({"failed_share": 0.5}, "errors 50%"),
        ({"p99_seconds": 2.5}, "p99 2.5 s"),
        ({"outbox_unpublished": 340, "outbox_oldest_seconds": 41.2}, "outbox 340 behind, oldest 41 s"),
        ({"outbox_unpublished": 40, "outbox_oldest_seconds": 0.2}, "ok"),
        (
            {"circuits": {"cart": "open", "identity": "half-open"}},
            "circuit to cart open; circuit to identity half-open",
        ),
        ({"dead_letters": 1}, "1 dead letter"),
        ({"dead_letters": 3}, "3 dead letters"),
    ],
)
def test_the_verdict_names_what_is_wrong(changes: dict, said: str) -> None:
    assert verdict(row(**changes)) == said


def test_a_service_whose_callers_opened_their_circuit_to_it_is_not_ok_even_when_idle() -> None:
    rows = with_callers(
        [row(service="gateway", circuits={"catalog": "open"}), row(service="catalog"), row(service="cart")]
    )

    assert [verdict(each) for each in rows] == ["circuit to catalog open", "circuit from gateway open", "ok"]


def test_circuits_are_the_worst_state_any_instance_sees() -> None:
    def breaker(dependency: str, value: float) -> tuple[str, dict[str, str], float]:
        return ("agora_breaker_state", {"dependency": dependency}, value)

    one = samples(breaker("cart", 1), breaker("catalog", 0), breaker("identity", 0))
    other = samples(breaker("cart", 2), breaker("catalog", 1), breaker("identity", 0))

    summed = summarize("orders", [Instance(one, one, 1.0, True), Instance(other, other, 1.0, True)], edge=False)

    assert summed.circuits == {"cart": "open", "catalog": "half-open"}


def test_with_no_city_it_says_so_in_one_line(city: City) -> None:
    result = city.agora("dashboard", "--interval", "1")

    assert result.returncode == 1
    assert result.stderr == f"error: no city is running in {city.home}\n"
