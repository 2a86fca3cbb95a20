"""A broker restart in the middle of traffic loses nothing: the outbox holds what the broker
has not acknowledged, and consumers resume where their durable consumer left off."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chassis.messaging import Consumer, NatsBus, OutboxRelay, PostgresInbox
from tests.chassis.messaging.support import THING_MADE, amounts, effects_reach, make_thing, record_effect

NATS_SERVER = Path(sys.executable).with_name("nats-server")


class OwnNats:
    """A nats-server (the pip one) of this test's own, on a free port, restartable by pid."""

    def __init__(self, store: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._store = store
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._process = subprocess.Popen(
            [str(NATS_SERVER), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self._store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[OwnNats]:
    server = OwnNats(tmp_path / "jetstream")
    server.start()
    yield server
    server.stop()


async def test_a_broker_restart_in_the_middle_of_traffic_loses_nothing(pool, city, own_nats) -> None:
    bus = NatsBus(own_nats.url, city, ack_wait_seconds=2, pull_expires_seconds=1)
    await _connect(bus)
    try:
        async with (
            OutboxRelay(pool, bus, service="things", poll_interval=0.2),
            Consumer("watcher", bus, PostgresInbox(pool), {THING_MADE: record_effect}),
        ):
            producing = asyncio.create_task(_produce(pool, 150))
            await effects_reach(pool, 40)
            own_nats.stop()
            await asyncio.sleep(1)
            own_nats.start()
            await producing
            await effects_reach(pool, 150)
            await asyncio.sleep(0.5)
        assert await amounts(pool) == list(range(150))
    finally:
        await bus.close()


async def _connect(bus: NatsBus) -> None:
    for _ in range(100):
        try:
            await bus.connect()
            return
        except Exception:
            await asyncio.sleep(0.05)
    raise AssertionError("own nats-server did not start")


async def _produce(pool, count: int) -> None:  # type: ignore[no-untyped-def]
    for n in range(count):
        await make_thing(pool, n)
        await asyncio.sleep(0.01)
