"""Each benchmark run with tiny parameters, so the commands keep working between the real runs
recorded in docs/benchmarks.md. The figures themselves are not judged here: a shared test
machine says nothing about speed; only that each measurement is real and is cleaned up."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import psutil
import pytest

from tests.conftest import ADMIN_DSN

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(module: str, *args: str, timeout: float) -> dict:
    finished = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return json.loads(finished.stdout)


def orphans(prefix: str) -> list[int]:
    """Processes a benchmark started (named in their arguments or their AGORA_HOME) whose
    temporary directory is already gone: they were left behind."""
    directory = re.compile(rf"(.*/{prefix}[^/]+)")
    left = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            places = [*(process.info["cmdline"] or []), process.environ().get("AGORA_HOME", "")]
            if any((match := directory.match(place)) and not Path(match[1]).exists() for place in places):
                left.append(process.info["pid"])
    return left


async def benchmark_databases() -> set[str]:
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        return {
            row["datname"] for row in await admin.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'bench%'")
        }
    finally:
        await admin.close()


async def test_the_event_benchmark_measures_both_paths_and_leaves_nothing_behind() -> None:
    databases_before = await benchmark_databases()
    report = run_benchmark("benchmarks.events", "--events", "5", "--warmup", "1", timeout=120)

    assert report["events"] == 5
    assert report["nats_server"].startswith("nats-server: v2.")
    for path in ("agora_outbox_commit_to_handler", "raw_jetstream_publish_to_consume"):
        figures = report[path]
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"] < 10_000
    assert report["p50_ratio"] > 0
    assert not (await benchmark_databases() - databases_before)
    assert not orphans("agora-bench-events-")


@pytest.mark.e2e
def test_the_gateway_benchmark_measures_start_memory_and_each_endpoint_and_brings_its_city_down() -> None:
    report = run_benchmark("benchmarks.gateway", "--seconds", "1", "--connections", "2", "--settle", "1",
                           "--rounds", "2", timeout=240)

    assert report["cold_start_seconds"] > 0
    for memory in report["city_memory"].values():
        assert 0 < memory["pss_mb"] <= memory["rss_mb"]
        assert memory["services rss_mb"] > 0 and memory["postgres rss_mb"] > 0
        assert memory["processes"] > len(report["services"])
    assert len(report["services"]) == 11
    for figures in report["endpoints"].values():
        assert figures["requests"] > 0 and figures["non_2xx"] == 0
        assert 0 < figures["p50_ms"] <= figures["p99_ms"]
        assert figures["cpu_ms_per_request"] > 0
        assert len(figures["cpu_ratio_by_round"]) == 2
    assert not orphans("agora-bench-")


@pytest.mark.e2e
def test_the_checkout_benchmark_confirms_orders_through_a_whole_city_and_brings_it_down() -> None:
    report = run_benchmark(
        "benchmarks.checkout", "--seconds", "3", "--warmup", "1", "--shoppers", "2", "--products", "1", timeout=280
    )

    checkout = report["checkout_by_shoppers"]["2"]
    assert checkout["completed_in_window"] > 0, checkout
    assert report["confirmed_orders_per_second"] == checkout["per_second"] > 0
    assert 0 < report["place_to_confirmed_p50_ms"] <= report["place_to_confirmed_p99_ms"]
    assert {"gateway", "orders", "inventory", "payments", "cart"} <= set(report["services"])
    assert checkout["cpu_ms_per_completion"]["orders"] > 0
    assert checkout["postgres_per_completion"]["transactions"] > 0 and checkout["postgres_per_completion"]["rows_inserted"] > 0
    assert report["baseline_get_products_by_shoppers"]["2"]["per_second"] > 0
    assert not orphans("agora-bench-checkout-")


@pytest.mark.e2e
def test_the_degradation_benchmark_measures_each_phase_and_brings_its_city_down() -> None:
    report = run_benchmark("benchmarks.degradation", "--seconds", "1", "--clients", "2", timeout=200)

    phases = report["phases"]
    assert set(phases) == {"healthy", "recommendations delayed 5000 ms", "recommendations stopped"}
    assert all(figures["requests"] > 0 and figures["not_200"] == 0 for figures in phases.values())
    assert phases["healthy"]["degraded_recommendations"] == 0
    assert phases["recommendations stopped"]["degraded_recommendations"] == phases["recommendations stopped"]["requests"]
    assert not orphans("agora-bench-degradation-")
