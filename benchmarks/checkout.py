"""Checkout throughput with the whole city: confirmed orders per second, and place → confirmed.

    .venv/bin/python -m benchmarks.checkout [--seconds 20] [--shoppers 8,32] [--warmup 3] [--products 20]

Starts a fresh city with `agora up --detach` in a temporary AGORA_HOME (every service in
`services/` that is installed, rate limits raised far above the load), creates products with plenty of stock through
the admin API and signs up shoppers. Then, for each shopper count, every shopper buys in a loop
for `--seconds`: PUT a cart item, POST /api/v1/orders with an Idempotency-Key, follow the order's
SSE stream until it is CONFIRMED. Only the edge contract (API.md) is used.

- throughput: orders whose CONFIRMED time (the order's own `history`) falls inside the measured
  window, per second; the highest over the shopper counts is the figure at saturation;
- latency: from just before the POST to the CONFIRMED time in the order's history, both read
  from this machine's clock, so the SSE stream's polling interval does not blur it;
- errors: any answer other than the expected one, a cancelled order, an order not settled in time;
- CPU: what each service, server (Postgres with its backends), this client and the whole machine
  spent inside the window, as busy cores and as milliseconds per confirmed order;
- Postgres: the city's transactions and rows inserted, updated, deleted and fetched inside the
  window, per confirmed order (`pg_stat_database`).

Baseline in the same run: the same shoppers looping on GET /api/v1/products, in requests/s.
Prints JSON; always runs `agora down` and removes the home.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import asyncpg
import psutil
import uvloop

from benchmarks.events import percentile
from benchmarks.gateway import AGORA, ROOT, free_port

ADMIN_EMAIL = "admin@bench.test"
ADMIN_PASSWORD = "bench-admin-password"
SHOPPER_PASSWORD = "correct horse battery"
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 Analytical Row",
    "city": "London",
    "postal_code": "N1 7AA",
    "country": "GB",
}
UNLIMITED = "100000000"
SETTLE_TIMEOUT = 30.0
ERROR_PAUSE = 0.2


def postgres_admin_url(home: Path, status: dict[str, Any]) -> str:
    """The city's Postgres as its superuser (the status shows the URL without its password)."""
    shown = urlsplit(next(entry["url"] for entry in status["infra"] if entry["name"] == "postgres"))
    password = (home / "secrets" / "postgres.password").read_text().strip()
    return f"postgresql://postgres:{quote(password)}@{shown.hostname}:{shown.port}/postgres"


def installed_services() -> str:
    """The whole city as it stands: every service in `services/` whose package is installed."""
    names = sorted(path.parent.name for path in ROOT.glob("services/*/pyproject.toml"))
    return ",".join(name for name in names if importlib.util.find_spec(name) is not None)


def city_environment(home: Path, gateway_port: int) -> dict[str, str]:
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("AGORA_")},
        "AGORA_HOME": str(home),
        "AGORA_GATEWAY_PORT": str(gateway_port),
        "AGORA_CITY": "bench",
        "AGORA_SERVICES": installed_services(),
        "AGORA_ADMIN_EMAIL": ADMIN_EMAIL,
        "AGORA_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AGORA_RATE_LIMIT_PER_MINUTE": UNLIMITED,
        "AGORA_LOGIN_RATE_LIMIT_PER_MINUTE": UNLIMITED,
        "AGORA_REGISTER_RATE_LIMIT_PER_MINUTE": UNLIMITED,
    }


class Shop:
    """One client of the edge API, signed in or not."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, token: str | None = None):
        self.http = http
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def call(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None, expect: int = 200
    ) -> Any:
        async with self.http.request(
            method, self.base_url + path, json=json, headers={**self.headers, **(headers or {})}
        ) as response:
            body = await response.read()
            if response.status != expect:
                raise Unexpected(f"{method} {path.split('/')[3]} {response.status}")
            return json_loads(body)

    async def signed_in(self, email: str, password: str) -> Shop:
        tokens = await self.call("POST", "/api/v1/auth/login", json={"email": email, "password": password})
        return Shop(self.http, self.base_url, tokens["access_token"])

    async def new_shopper(self) -> Shop:
        email = f"shopper-{uuid.uuid4().hex[:12]}@bench.test"
        await self.call(
            "POST",
            "/api/v1/auth/register",
            json={"email": email, "password": SHOPPER_PASSWORD, "name": "Shopper"},
            expect=201,
        )
        return await self.signed_in(email, SHOPPER_PASSWORD)

    async def new_product(self, stock: int) -> str:
        product = await self.call(
            "POST",
            "/api/v1/admin/products",
            expect=201,
            json={
                "sku": f"BENCH-{uuid.uuid4().hex[:10]}",
                "name": "Benchmark Teapot",
                "description": "Brews load",
                "price": {"amount": 1250, "currency": "USD"},
                "categories": ["kitchen"],
            },
        )
        await self.call("PUT", f"/api/v1/admin/inventory/{product['id']}", json={"quantity": stock})
        return product["id"]

    async def follow_until_confirmed(self, order_id: str) -> dict[str, Any]:
        """The order as the SSE stream shows it once it is past PENDING."""
        async with self.http.get(
            f"{self.base_url}/api/v1/orders/{order_id}/events",
            headers=self.headers,
            timeout=aiohttp.ClientTimeout(total=SETTLE_TIMEOUT),
        ) as response:
            if response.status != 200:
                raise Unexpected(f"GET events {response.status}")
            async for line in response.content:
                if line.startswith(b"data:"):
                    order = json_loads(line[5:])
                    if order["status"] != "PENDING":
                        return order
        raise Unexpected("events ended while PENDING")


class Unexpected(Exception):
    """An answer the benchmark did not expect; its message is the error's kind."""


def json_loads(body: bytes) -> Any:
    return json.loads(body) if body else None


def wall_time(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


class CpuMeter:
    """CPU seconds spent so far by each service (its instances summed), each server (Postgres
    with its backends), this client, and the whole machine (other people's work included)."""

    def __init__(self, status: dict[str, Any]):
        self._processes = [
            (entry["name"], psutil.Process(entry["pid"]))
            for entry in status["services"] + status["infra"]
            if entry.get("pid")
        ]

    def sample(self) -> Counter[str]:
        spent: Counter[str] = Counter()
        for name, process in self._processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                spent[name] += _busy(process.cpu_times())
                for child in process.children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        spent[name] += _busy(child.cpu_times())
        spent["benchmark client"] = _busy(psutil.Process().cpu_times())
        machine = psutil.cpu_times()
        spent[MACHINE] = machine.user + machine.nice + machine.system + machine.irq + machine.softirq
        return spent


MACHINE = "whole machine"


class PostgresMeter:
    """What the city's databases have done so far, from `pg_stat_database`: transactions (a
    statement outside `BEGIN ... COMMIT` is one of its own) and rows. Backends report at most once
    a second, so a window's figures are off by about a second of work at each end."""

    def __init__(self, connection: asyncpg.Connection, city: str):
        self._connection = connection
        self._databases = f"{city}\\_%"

    async def sample(self) -> Counter[str]:
        row = await self._connection.fetchrow(
            "SELECT sum(xact_commit + xact_rollback) AS transactions, sum(tup_inserted) AS rows_inserted,"
            " sum(tup_updated) AS rows_updated, sum(tup_deleted) AS rows_deleted, sum(tup_fetched) AS rows_fetched"
            " FROM pg_stat_database WHERE datname LIKE $1",
            self._databases,
        )
        return Counter({name: int(value or 0) for name, value in row.items()})


def _busy(times: Any) -> float:
    return times.user + times.system


@dataclass
class Round:
    """What one round of workers produced: (started, finished) wall times of each unit of work."""

    window: tuple[float, float]
    completed: list[tuple[float, float]] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    cpu: Counter[str] = field(default_factory=Counter)
    """CPU seconds spent inside the window, by process."""
    postgres: Counter[str] = field(default_factory=Counter)
    """What the city's databases did inside the window (`PostgresMeter`)."""

    async def failed(self, kind: str) -> None:
        """Counts the error and pauses the worker: a failing city answers fast, and a worker
        retrying at once would turn the round into a measure of how fast errors come back."""
        self.errors[kind] += 1
        await asyncio.sleep(ERROR_PAUSE)

    def figures(self) -> dict[str, Any]:
        """Completions inside the window per second; latency of the work started inside it."""
        start, end = self.window
        finished = [f for _, f in self.completed if start <= f <= end]
        latencies = [f - s for s, f in self.completed if start <= s <= end]
        return {
            "per_second": round(len(finished) / (end - start), 1),
            "completed_in_window": len(finished),
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 1) if latencies else None,
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
            "errors": dict(self.errors),
            "busy_cores": {name: round(cpu / (end - start), 2) for name, cpu in self.cpu.most_common()},
            "cpu_ms_per_completion": {
                name: round(cpu / max(1, len(finished)) * 1000, 2)
                for name, cpu in self.cpu.most_common()
                if name != MACHINE
            },
            "postgres_per_completion": {
                name: round(count / max(1, len(finished)), 1) for name, count in sorted(self.postgres.items())
            },
        }


async def buy(shopper: Shop, products: list[str], stop: float, results: Round) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < stop:
        try:
            await shopper.call("PUT", f"/api/v1/cart/items/{random.choice(products)}", json={"quantity": 1})
            placed = time.time()
            order = await shopper.call(
                "POST",
                "/api/v1/orders",
                expect=202,
                json={"shipping_address": ADDRESS, "payment": {"token": "tok_visa"}},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            settled = await shopper.follow_until_confirmed(order["order_id"])
            if settled["status"] == "CANCELLED":
                raise Unexpected(f"cancelled {settled['status_reason']}")
            confirmed = next(change["at"] for change in settled["history"] if change["status"] == "CONFIRMED")
            results.completed.append((placed, wall_time(confirmed)))
        except Unexpected as error:
            await results.failed(str(error))
        except (aiohttp.ClientError, TimeoutError) as error:
            await results.failed(type(error).__name__)


async def browse(shopper: Shop, stop: float, results: Round) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < stop:
        try:
            asked = time.time()
            await shopper.call("GET", "/api/v1/products?page_size=20")
            results.completed.append((asked, time.time()))
        except Unexpected as error:
            await results.failed(str(error))
        except (aiohttp.ClientError, TimeoutError) as error:
            await results.failed(type(error).__name__)


async def timed_round(
    workers: list[Callable[[float, Round], Awaitable[None]]],
    warmup: float,
    seconds: float,
    cpu: CpuMeter,
    postgres: PostgresMeter,
) -> Round:
    """Runs `workers(stop, results)` together; measures the `seconds` after a `warmup`."""
    now = time.time()
    results = Round(window=(now + warmup, now + warmup + seconds))
    stop = asyncio.get_running_loop().time() + warmup + seconds

    async def meter() -> None:
        await asyncio.sleep(warmup)
        before, done_before = cpu.sample(), await postgres.sample()
        await asyncio.sleep(seconds)
        results.cpu = cpu.sample() - before
        results.postgres = await postgres.sample() - done_before

    await asyncio.gather(meter(), *(worker(stop, results) for worker in workers))
    return results


async def measure(
    base_url: str,
    cpu: CpuMeter,
    postgres_url: str,
    levels: list[int],
    seconds: float,
    warmup: float,
    products: int,
) -> dict:
    statistics = await asyncpg.connect(postgres_url)
    postgres = PostgresMeter(statistics, city="bench")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        anonymous = Shop(http, base_url)
        admin = await anonymous.signed_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        catalog = [await admin.new_product(stock=1_000_000) for _ in range(products)]
        signing_up = asyncio.Semaphore(8)  # password hashing is CPU-bound: a queue, not a stampede

        async def sign_up() -> Shop:
            async with signing_up:
                return await anonymous.new_shopper()

        shoppers = await asyncio.gather(*(sign_up() for _ in range(max(levels))))
        checkout = {}
        for level in levels:
            workers = [lambda stop, results, s=s: buy(s, catalog, stop, results) for s in shoppers[:level]]
            checkout[str(level)] = (await timed_round(workers, warmup, seconds, cpu, postgres)).figures()
        workers = [lambda stop, results, s=s: browse(s, stop, results) for s in shoppers[: max(levels)]]
        baseline = (await timed_round(workers, warmup, seconds, cpu, postgres)).figures()
    await statistics.close()
    saturated = max(checkout.values(), key=lambda figures: figures["per_second"])
    return {
        "confirmed_orders_per_second": saturated["per_second"],
        "place_to_confirmed_p50_ms": saturated["p50_ms"],
        "place_to_confirmed_p99_ms": saturated["p99_ms"],
        "checkout_by_shoppers": checkout,
        "baseline_get_products_by_shoppers": {str(max(levels)): baseline},
        "orders_per_products_request": round(saturated["per_second"] / baseline["per_second"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--shoppers", default="8,32", help="shopper counts, comma-separated")
    parser.add_argument("--products", type=int, default=20)
    options = parser.parse_args()
    levels = [int(level) for level in options.shoppers.split(",")]

    home = Path(tempfile.mkdtemp(prefix="agora-bench-checkout-"))
    gateway_port = free_port()
    env = city_environment(home, gateway_port)
    try:
        started = time.perf_counter()
        up = subprocess.run([AGORA, "up", "--detach"], env=env, capture_output=True, text=True, cwd=ROOT)
        if up.returncode != 0:
            raise SystemExit(f"agora up failed:\n{up.stdout}{up.stderr}")
        cold_start = round(time.perf_counter() - started, 2)
        status = json.loads(
            subprocess.run(
                [AGORA, "status", "--json"], env=env, check=True, capture_output=True, text=True, cwd=ROOT
            ).stdout
        )
        base_url = f"http://127.0.0.1:{gateway_port}"
        report = uvloop.run(
            measure(
                base_url,
                CpuMeter(status),
                postgres_admin_url(home, status),
                levels,
                options.seconds,
                options.warmup,
                options.products,
            )
        )
        report = {
            "load_average": [round(load, 2) for load in os.getloadavg()],
            "cold_start_seconds": cold_start,
            "services": sorted(s["name"] for s in status["services"]),
            "seconds": options.seconds,
            **report,
        }
        print(json.dumps(report, indent=2))
    finally:
        subprocess.run([AGORA, "down"], env=env, capture_output=True, cwd=ROOT)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
