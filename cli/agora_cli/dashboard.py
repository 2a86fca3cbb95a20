"""`agora dashboard`: is each service working? Its vital signs, read from every instance's `/metrics`.

Every instance is scraped twice, an interval apart; counters become rates over that interval and
latency histograms a p99 of what was served in it, summed over a service's instances. The
arithmetic (`increase`, `quantile`, `summarize`, `verdict`) is pure, so tests feed it hand-made
samples; `read_city` and `run` do the fetching and the printing.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agora_cli import state
from agora_cli.config import Home
from agora_cli.net import http_get, http_status

# (name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# The operator's probes, not the shop's traffic: a scraper or a load balancer polling them would
# otherwise make an idle gateway look busy, and this command's own scrape would count itself.
PROBE_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
# gRPC codes that are the serving side's fault; the others (NOT_FOUND, INVALID_ARGUMENT,
# UNAUTHENTICATED, CANCELLED by the caller, ...) are answers to what the caller asked.
FAULT_CODES = frozenset({"UNAVAILABLE", "INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED", "DATA_LOSS"})
BREAKER_STATES = {1: "half-open", 2: "open"}  # agora_breaker_state; 0 is closed
EVENT_FAILURES = frozenset({"retried", "dead_lettered"})

# When a vital sign is a problem. A share below 1 % is the noise a busy city always has; the
# outbox relay publishes within milliseconds and backs off at most 5 s, so a row 10 s old means
# the broker is not taking events; p99 of a second is ten times the slowest checkout step.
FAILED_SHARE = 0.01
OUTBOX_STALE_SECONDS = 10.0
SLOW_P99_SECONDS = 1.0

FETCH_TIMEOUT_SECONDS = 1.0


def parse(text: str) -> Samples:
    """Prometheus text exposition as samples; `_created` timestamps are not measurements."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def increase(before: Samples, after: Samples) -> Samples:
    """How much each counter of `after` grew since `before`.

    A process that started anew between the scrapes (its `process_start_time_seconds` changed)
    counted all of `after` since then; so did a series that was not there before. A counter lower
    than before was reset too: it grew from zero.
    """
    start = ("process_start_time_seconds", ())
    if before.get(start) != after.get(start):
        before = {}
    grown: Samples = {}
    for key, value in after.items():
        previous = before.get(key, 0.0)
        grown[key] = value - previous if value >= previous else value
    return grown


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' `histogram_quantile`: `buckets` maps each upper bound (`inf` included) to the
    cumulative count; linear within the bucket the rank falls in; the highest finite bound when
    it falls in the `+Inf` bucket; None with nothing counted."""
    lower, below = 0.0, 0.0
    cumulative = []
    for bound in sorted(buckets):
        # Cumulative counts never fall; a reset seen by some buckets and not others must not
        # make them (deltas of a restarted process's buckets).
        below = max(below, buckets[bound])
        cumulative.append((bound, below))
    total = below
    if total <= 0:
        return None
    rank = q * total
    below = 0.0
    for bound, count in cumulative:
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


@dataclass(frozen=True)
class Instance:
    """One instance of a service: two readings of its metrics (None where it did not answer),
    `seconds` apart, and whether it was ready at the second one."""

    before: Samples | None
    after: Samples | None
    seconds: float
    ready: bool


@dataclass(frozen=True)
class Row:
    service: str
    protocol: str  # "http" at the edge, "grpc" behind it
    instances: int
    ready: int
    down: int  # did not answer /metrics (stopped ones included)
    requests_per_second: float | None  # None: no instance was read twice
    failed_share: float | None  # of those requests, failed as the service's fault; None with none
    p99_seconds: float | None
    events_per_second: float | None  # events finished with: applied, duplicate, ignored, dead-lettered
    event_failures_per_second: float | None  # retried or dead-lettered
    dead_letters: int  # since the instances started
    outbox_unpublished: int
    outbox_oldest_seconds: float
    circuits: dict[str, str] = field(default_factory=dict)  # dependency -> "open" | "half-open"
    # Services whose circuit to this one is open: it may look idle and well while no one reaches
    # it, because they stopped calling it.
    shunned_by: list[str] = field(default_factory=list)


def summarize(service: str, instances: Iterable[Instance], *, edge: bool) -> Row:
    """One row for a service, its instances summed: rates over the interval, gauges now."""
    instances = list(instances)
    if edge:
        requests, duration = "agora_http_requests_total", "agora_http_request_duration_seconds_bucket"
    else:
        requests, duration = "agora_grpc_server_requests_total", "agora_grpc_server_duration_seconds_bucket"
    rated = [
        (instance, increase(instance.before, instance.after))
        for instance in instances
        if instance.before is not None and instance.after is not None and instance.seconds > 0
    ]
    served = failed = events = event_failures = 0.0
    buckets: dict[float, float] = defaultdict(float)
    for instance, grown in rated:
        for (name, labels), value in grown.items():
            label = dict(labels)
            if name == requests and label.get("route") not in PROBE_ROUTES:
                served += value / instance.seconds
                if _is_fault(label):
                    failed += value / instance.seconds
            elif name == duration and label.get("route") not in PROBE_ROUTES:
                buckets[float(label["le"])] += value
            elif name == "agora_events_consumed_total":
                if label.get("outcome") != "retried":
                    events += value / instance.seconds
                if label.get("outcome") in EVENT_FAILURES:
                    event_failures += value / instance.seconds
    answered = [instance.after for instance in instances if instance.after is not None]
    circuits: dict[str, int] = {}
    for samples in answered:
        for (name, labels), value in samples.items():
            if name == "agora_breaker_state" and int(value) in BREAKER_STATES:
                dependency = dict(labels).get("dependency", "?")
                circuits[dependency] = max(circuits.get(dependency, 0), int(value))
    return Row(
        service=service,
        protocol="http" if edge else "grpc",
        instances=len(instances),
        ready=sum(instance.ready for instance in instances),
        down=len(instances) - len(answered),
        requests_per_second=served if rated else None,
        failed_share=failed / served if served else None,
        p99_seconds=quantile(0.99, buckets),
        events_per_second=events if rated else None,
        event_failures_per_second=event_failures if rated else None,
        dead_letters=round(_total(answered, "agora_dead_letters_total")),
        outbox_unpublished=round(_total(answered, "agora_outbox_unpublished")),
        outbox_oldest_seconds=max(_values(answered, "agora_outbox_oldest_unpublished_age_seconds"), default=0.0),
        circuits={dependency: BREAKER_STATES[value] for dependency, value in sorted(circuits.items())},
    )


def _is_fault(label: dict[str, str]) -> bool:
    return label.get("status", "").startswith("5") or label.get("code") in FAULT_CODES


def _values(readings: list[Samples], name: str) -> list[float]:
    return [value for samples in readings for (sample, _), value in samples.items() if sample == name]


def _total(readings: list[Samples], name: str) -> float:
    return sum(_values(readings, name))


def verdict(row: Row) -> str:
    """What is wrong with the service, worst first ("not ready; 5xx 12%; circuit to cart open"), or "ok"."""
    problems = []
    if row.down == row.instances:
        problems.append("down")
    elif row.down:
        problems.append(f"{row.down} of {row.instances} down")
    unready = row.instances - row.down - row.ready
    if unready and unready == row.instances - row.down:
        problems.append("not ready")
    elif unready:
        problems.append(f"{unready} of {row.instances} not ready")
    if row.failed_share is not None and row.failed_share >= FAILED_SHARE:
        problems.append(f"{'5xx' if row.protocol == 'http' else 'errors'} {row.failed_share:.0%}")
    if row.p99_seconds is not None and row.p99_seconds >= SLOW_P99_SECONDS:
        problems.append(f"p99 {row.p99_seconds:.1f} s")
    problems += [f"circuit to {dependency} {circuit}" for dependency, circuit in row.circuits.items()]
    if row.shunned_by:
        problems.append(f"circuit from {', '.join(row.shunned_by)} open")
    if row.outbox_oldest_seconds >= OUTBOX_STALE_SECONDS:
        problems.append(f"outbox {row.outbox_unpublished} behind, oldest {row.outbox_oldest_seconds:.0f} s")
    if row.event_failures_per_second:
        problems.append(f"events failing {row.event_failures_per_second:.1f}/s")
    if row.dead_letters:
        problems.append(f"{row.dead_letters} dead letter{'s' if row.dead_letters != 1 else ''}")
    return "; ".join(problems) or "ok"


def as_json(row: Row) -> dict[str, Any]:
    return {**asdict(row), "verdict": verdict(row)}


# --- reading a running city ------------------------------------------------------------------

Key = tuple[str, int]  # (service, instance)


@dataclass(frozen=True)
class Reading:
    samples: Samples | None
    at: float  # time.monotonic() once the answer was in


async def read_city(city: dict[str, Any]) -> dict[Key, Reading]:
    """Every instance's metrics, fetched all at once; None for one that did not answer in time,
    was stopped, or answered something that is not Prometheus text."""

    async def read(entry: dict[str, Any]) -> Reading:
        body = None
        if not entry.get("stopped"):
            host, port = entry["http"].rsplit(":", 1)
            body = await http_get(host, int(port), "/metrics", FETCH_TIMEOUT_SECONDS)
        try:
            samples = parse(body.decode()) if body is not None else None
        except (ValueError, UnicodeDecodeError):
            samples = None
        return Reading(samples, time.monotonic())

    entries = city["services"]
    readings = await asyncio.gather(*(read(entry) for entry in entries))
    return {(entry["name"], entry["instance"]): reading for entry, reading in zip(entries, readings, strict=True)}


async def readiness(city: dict[str, Any]) -> dict[Key, bool]:
    async def ready(entry: dict[str, Any]) -> bool:
        if entry.get("stopped"):
            return False
        host, port = entry["http"].rsplit(":", 1)
        return await http_status(host, int(port), "/readyz", FETCH_TIMEOUT_SECONDS) == 200

    entries = city["services"]
    answers = await asyncio.gather(*(ready(entry) for entry in entries))
    return {(entry["name"], entry["instance"]): answer for entry, answer in zip(entries, answers, strict=True)}


def rows(
    city: dict[str, Any], before: dict[Key, Reading], after: dict[Key, Reading], ready: dict[Key, bool]
) -> list[Row]:
    """One row per service of `city`, the gateway first."""
    public = (city.get("gateway_url") or "").removeprefix("http://")
    services: dict[str, list[Instance]] = {}
    edges = set()
    for entry in city["services"]:
        key = (entry["name"], entry["instance"])
        earlier = before.get(key)
        later = after[key]
        services.setdefault(entry["name"], []).append(
            Instance(
                before=earlier.samples if earlier else None,
                after=later.samples,
                seconds=later.at - earlier.at if earlier else 0.0,
                ready=ready[key],
            )
        )
        if entry["http"] == public:
            edges.add(entry["name"])
    order = sorted(services, key=lambda name: name not in edges)
    return with_callers([summarize(name, services[name], edge=name in edges) for name in order])


def with_callers(table_rows: list[Row]) -> list[Row]:
    """Each row with the services whose circuit to it is open."""
    return [
        replace(row, shunned_by=[other.service for other in table_rows if other.circuits.get(row.service) == "open"])
        for row in table_rows
    ]


async def frames(home: Home, interval: float) -> AsyncIterator[tuple[dict[str, Any], list[Row]]]:
    """(city, rows) every `interval` seconds, each over the interval since the one before; the
    first after two scrapes. Ends with an AgoraError once the city is no longer running."""
    city = state.running(home)
    started = time.monotonic()
    before = await read_city(city)
    while True:
        await asyncio.sleep(max(0.0, started + interval - time.monotonic()))
        started = time.monotonic()
        city = state.running(home)
        after, ready = await asyncio.gather(read_city(city), readiness(city))
        yield city, rows(city, before, after, ready)
        before = after


def render(city: dict[str, Any], table_rows: list[Row], interval: float) -> Table:
    troubled = [row for row in table_rows if verdict(row) != "ok"]
    condition = f"{len(troubled)} of {len(table_rows)} services need attention" if troubled else "every service ok"
    table = Table(title=f"city {city['city']}: {condition} (over the last {interval:g} s)", title_justify="left")
    for column in (
        "service",
        "ready",
        "req/s",
        "failed",
        "p99",
        "events/s",
        "ev fail/s",
        "dead",
        "outbox",
        "open circuits",
        "verdict",
    ):
        table.add_column(column, justify="left" if column in ("service", "open circuits", "verdict") else "right")
    for row in table_rows:
        said = verdict(row)
        outbox = f"{row.outbox_unpublished} ({row.outbox_oldest_seconds:.0f} s)" if row.outbox_unpublished else "0"
        table.add_row(
            row.service,
            f"{row.ready}/{row.instances}",
            _number(row.requests_per_second),
            f"{row.failed_share:.1%}" if row.failed_share is not None else "-",
            f"{row.p99_seconds * 1000:.0f} ms" if row.p99_seconds is not None else "-",
            _number(row.events_per_second),
            _number(row.event_failures_per_second),
            str(row.dead_letters),
            outbox,
            ", ".join(f"{dependency} {circuit}" for dependency, circuit in row.circuits.items()),
            Text(said, style="green" if said == "ok" else "bold red"),
        )
    return table


def _number(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}"


def document(city: dict[str, Any], table_rows: list[Row], interval: float) -> str:
    return json.dumps(
        {"city": city["city"], "interval_seconds": interval, "services": [as_json(row) for row in table_rows]}
    )


async def run(home: Home, console: Console, *, interval: float, watch: bool, as_json: bool) -> None:
    """Prints one frame, or (`watch`) one per interval until cancelled: a table redrawn in place,
    or with `as_json` one JSON document per line."""
    shown = frames(home, interval)
    if not watch:
        city, table_rows = await anext(shown)
        if as_json:
            print(document(city, table_rows, interval))
        else:
            console.print(render(city, table_rows, interval))
        return
    if as_json:
        async for city, table_rows in shown:
            print(document(city, table_rows, interval), flush=True)
        return
    with Live(Text(f"reading the city's metrics for {interval:g} s ..."), console=console, auto_refresh=False) as live:
        async for city, table_rows in shown:
            live.update(render(city, table_rows, interval), refresh=True)
