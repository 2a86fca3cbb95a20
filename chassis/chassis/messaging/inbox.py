"""Inboxes: an event applied once per consumer, whatever the broker redelivers.

The claim and the handler's effect commit together: in Postgres, in one transaction; in Redis,
in one MULTI/EXEC guarded by WATCH on the claim key.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import WatchError

from chassis.messaging.envelope import Event


class Inbox(Protocol):
    def claim(self, consumer: str, event: Event) -> contextlib.AbstractAsyncContextManager[Any | None]:
        """Yields the transaction to apply the event in, or None if it was already applied."""
        ...


class PostgresInbox:
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    @contextlib.asynccontextmanager
    async def claim(self, consumer: str, event: Event) -> AsyncIterator[asyncpg.Connection | None]:
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await conn.fetchval(
                "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
                consumer, event.id,
            )
            yield conn if claimed else None


class RedisInbox:
    """The handler queues its writes on the yielded pipeline; they run with the claim, atomically."""

    def __init__(self, redis: Redis, prefix: str, *, ttl_seconds: int = 7 * 24 * 3600):
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds

    @contextlib.asynccontextmanager
    async def claim(self, consumer: str, event: Event) -> AsyncIterator[Any | None]:
        key = f"{self._prefix}inbox:{consumer}:{event.id}"
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            if await pipe.exists(key):
                yield None
                return
            pipe.multi()
            yield pipe
            pipe.set(key, 1, ex=self._ttl)
            try:
                await pipe.execute()
            except WatchError:
                # Another delivery of the same event claimed it between WATCH and EXEC: theirs won.
                return
