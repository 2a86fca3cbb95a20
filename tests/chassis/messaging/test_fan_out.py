"""Pub/sub fan-out: one event reaches every subscribing service on its own durable consumer.

A stopped consumer delays only itself; when it comes back it catches up with nothing lost.
"""

from __future__ import annotations

import asyncpg

from chassis.messaging import Consumer, Envelope, OutboxRelay, PostgresInbox
from tests.chassis.messaging.support import THING_MADE, eventually, make_thing


async def record(event: Envelope, conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO effects VALUES ($1, $2)", event.id, event.data["amount"])


async def seen_by(pool: asyncpg.Pool, consumer: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", consumer)


async def test_a_stopped_consumer_delays_only_itself_and_catches_up(pool, bus) -> None:
    relay = OutboxRelay(pool, bus, service="things", poll_interval=0.2, standby_interval=0.2)
    mail = Consumer("mail", bus, PostgresInbox(pool), {THING_MADE: record})
    books = Consumer("bookkeeping", bus, PostgresInbox(pool), {THING_MADE: record})
    async with relay, mail:
        await books.start()
        await make_thing(pool, 1)
        await eventually(lambda: _both(pool, 1))
        await books.stop()

        for amount in range(2, 12):
            await make_thing(pool, amount)

        async def mail_caught_up() -> bool:
            return await seen_by(pool, "mail") == 11

        await eventually(mail_caught_up)
        assert await seen_by(pool, "bookkeeping") == 1

        books_again = Consumer("bookkeeping", bus, PostgresInbox(pool), {THING_MADE: record})
        async with books_again:
            await eventually(lambda: _both(pool, 11))
    assert await pool.fetchval("SELECT count(*) FROM effects") == 22


async def _both(pool: asyncpg.Pool, count: int) -> bool:
    return await seen_by(pool, "mail") == count and await seen_by(pool, "bookkeeping") == count
