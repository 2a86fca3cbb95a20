"""What the delivery tests share: producing things, recording their effect, waiting."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from chassis.messaging import Envelope, NatsBus, Outbox

THING_MADE = "agora.things.ThingMade.v1"
THINGS = Outbox("things")
WORKER = Path(__file__).with_name("worker.py")
NATS_SERVER = Path(sys.executable).with_name("nats-server")


async def record_effect(event: Envelope, conn: asyncpg.Connection) -> None:
    """The handler under test: no unique constraint, so applying twice would show."""
    await conn.execute("INSERT INTO effects VALUES ($1, $2)", event.id, event.data["amount"])


async def make_thing(pool: asyncpg.Pool, amount: int) -> Envelope:
    async with pool.acquire() as conn, conn.transaction():
        return await THINGS.add(
            conn, "ThingMade", {"thing_id": f"thing-{amount}", "amount": amount}, subject=f"thing-{amount}"
        )


async def amounts(pool: asyncpg.Pool) -> list[int]:
    return [row["amount"] for row in await pool.fetch("SELECT amount FROM effects ORDER BY amount")]


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def effects_reach(pool: asyncpg.Pool, count: int) -> None:
    async def reached() -> bool:
        return await pool.fetchval("SELECT count(*) FROM effects") >= count

    await eventually(reached)


def start_worker(*args: str) -> subprocess.Popen[bytes]:
    """`worker.py` in its own process, with this test's schemas (AGORA_CONTRACTS_DIR)."""
    return subprocess.Popen([sys.executable, str(WORKER), *args], env=dict(os.environ))


def kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


class OwnNats:
    """A nats-server (the pip one, newer than the machine's) of a test's own, on a free port,
    restartable by pid."""

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


async def connect_when_up(bus: NatsBus) -> None:
    """Connects `bus` to a server that may still be starting (an `OwnNats`)."""
    for _ in range(100):
        try:
            await bus.connect()
            return
        except Exception:
            await asyncio.sleep(0.05)
    raise AssertionError("own nats-server did not start")
