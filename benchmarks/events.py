"""Event propagation: outbox commit to consumer handler, against raw JetStream publish to consume.

    .venv/bin/python -m benchmarks.events [--events 500]

Starts its own nats-server (the pip one) on a free port and a throwaway database on the
machine's Postgres (`AGORA_BENCH_POSTGRES`, default postgres@127.0.0.1:5432). Then sends events
one at a time, alternating the two paths so both see the same machine:

- Agora: a transaction that writes an `Outbox` row commits; the `OutboxRelay` (woken by NOTIFY)
  publishes it; a `Consumer` with a `PostgresInbox` claims it and runs the handler. Measured from
  the commit's return to the handler's first line.
- raw JetStream: nats-py `js.publish` on a stream, a durable pull consumer fetching one message at
  a time. Measured from the publish call to the fetch's return.

Prints p50/p99 of each in milliseconds and their ratio, as JSON. Removes the database, the
server and its store afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
import nats
import structlog
import uvloop
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from benchmarks.gateway import free_port
from chassis import db, tracing
from chassis.messaging import MIGRATIONS, Consumer, Envelope, NatsBus, Outbox, OutboxRelay, PostgresInbox

ADMIN_DSN = os.environ.get("AGORA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_SERVER = Path(sys.executable).with_name("nats-server")
PRODUCER = "bench"
PING = f"agora.{PRODUCER}.Ping.v1"
PING_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["n"],
    "properties": {"n": {"type": "integer"}},
    "additionalProperties": False,
}
IDLE_BETWEEN_EVENTS = 0.005
"""Lets both consumers get back to waiting with a pull request open, as an idle city would."""


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank, so the figure is one that was measured."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def summary(seconds: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(seconds, 0.50) * 1000, 2),
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2),
    }


@contextmanager
def nats_server(store: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [str(NATS_SERVER), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{NATS_SERVER} did not start")
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@asynccontextmanager
async def throwaway_database() -> AsyncIterator[str]:
    name = "bench" + secrets.token_hex(5)
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class Arrivals:
    """When each message reached its consumer, and a way to wait for one."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[float]] = {}

    def expect(self, key: str) -> asyncio.Future[float]:
        self._waiting[key] = asyncio.get_running_loop().create_future()
        return self._waiting[key]

    def arrived(self, key: str) -> None:
        now = time.perf_counter()
        waiter = self._waiting.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(now)


@asynccontextmanager
async def agora_path(pool: asyncpg.Pool, url: str, city: str) -> AsyncIterator[Callable[[int], Awaitable[float]]]:
    """Producer and consumer each with their own NATS connection, as two services would have."""
    outbox = Outbox(PRODUCER)
    arrivals = Arrivals()

    async def handler(event: Envelope, conn: asyncpg.Connection) -> None:
        arrivals.arrived(event.id)

    async def send(n: int) -> float:
        async with pool.acquire() as conn:
            async with conn.transaction():
                event = await outbox.add(conn, "Ping", {"n": n}, subject=f"ping-{n}")
                arrival = arrivals.expect(event.id)
            committed = time.perf_counter()
        return await asyncio.wait_for(arrival, 10) - committed

    producer_bus, consumer_bus = NatsBus(url, city, name="producer"), NatsBus(url, city, name="consumer")
    await producer_bus.connect()
    await consumer_bus.connect()
    try:
        await producer_bus.ensure_stream(PRODUCER)
        async with (
            OutboxRelay(pool, producer_bus, service=PRODUCER),
            Consumer("benchconsumer", consumer_bus, PostgresInbox(pool), {PING: handler}),
        ):
            yield send
    finally:
        await producer_bus.delete_streams()
        await producer_bus.close()
        await consumer_bus.close()


@asynccontextmanager
async def raw_path(url: str, city: str) -> AsyncIterator[Callable[[int], Awaitable[float]]]:
    """The floor: nats-py alone, a JetStream publish awaited until acked, a pull consumer."""
    stream, subject = f"{city}_RAW".upper(), f"{city}.raw.ping"
    producer, consumer = await nats.connect(url), await nats.connect(url)
    js = producer.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[subject], storage=StorageType.FILE))
    pull = await consumer.jetstream().pull_subscribe(
        subject, durable="raw", stream=stream, config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)
    )
    arrivals = Arrivals()

    async def consume() -> None:
        while True:
            try:
                messages = await pull.fetch(1, timeout=5)
            except nats.errors.TimeoutError:
                continue
            for message in messages:
                arrivals.arrived(message.data.decode())
                await message.ack()

    async def send(n: int) -> float:
        arrival = arrivals.expect(str(n))
        published = time.perf_counter()
        await js.publish(subject, str(n).encode(), stream=stream, headers={"Nats-Msg-Id": f"raw-{n}"})
        return await asyncio.wait_for(arrival, 10) - published

    consuming = asyncio.create_task(consume())
    try:
        yield send
    finally:
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
        await js.delete_stream(stream)
        await producer.close()
        await consumer.close()


async def measure(url: str, events: int, warmup: int) -> dict:
    city = "bench" + secrets.token_hex(4)
    async with throwaway_database() as dsn:
        pool = await db.connect(dsn, min_size=4, max_size=10)
        try:
            await db.migrate(pool, {"messaging": MIGRATIONS})
            async with agora_path(pool, url, city) as agora, raw_path(url, city) as raw:
                latencies: dict[str, list[float]] = {"agora": [], "raw": []}
                for n in range(warmup + events):
                    for name, send in (("raw", raw), ("agora", agora)):
                        await asyncio.sleep(IDLE_BETWEEN_EVENTS)
                        latency = await send(n)
                        if n >= warmup:
                            latencies[name].append(latency)
        finally:
            await pool.close()
    agora, raw = summary(latencies["agora"]), summary(latencies["raw"])
    return {
        "events": events,
        "agora_outbox_commit_to_handler": agora,
        "raw_jetstream_publish_to_consume": raw,
        "p50_ratio": round(agora["p50_ms"] / raw["p50_ms"], 2),
        "p99_ratio": round(agora["p99_ms"] / raw["p99_ms"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    options = parser.parse_args()
    # The relay's and consumer's info lines would interleave with the report on stdout.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    tracing.configure("bench")  # real spans, as in a running service
    work = Path(tempfile.mkdtemp(prefix="agora-bench-events-"))
    try:
        (work / "events" / PRODUCER).mkdir(parents=True)
        (work / "events" / PRODUCER / "Ping.v1.json").write_text(json.dumps(PING_SCHEMA))
        os.environ["AGORA_CONTRACTS_DIR"] = str(work / "events")
        with nats_server(work / "jetstream") as url:
            report = uvloop.run(measure(url, options.events, options.warmup))  # the services' event loop
    finally:
        shutil.rmtree(work, ignore_errors=True)
    version = subprocess.run([str(NATS_SERVER), "--version"], capture_output=True, text=True).stdout.strip()
    report = {"nats_server": version, "load_average": [round(load, 2) for load in os.getloadavg()], **report}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
