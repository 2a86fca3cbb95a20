"""What the delivery tests share: producing things, recording their effect, waiting."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from chassis.messaging import Envelope, Outbox

THING_MADE = "agora.things.ThingMade.v1"
THINGS = Outbox("things")
WORKER = Path(__file__).with_name("worker.py")


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
