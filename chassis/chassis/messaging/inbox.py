"""Inboxes: each event applied once per consumer, however often the broker delivers it.

The claim ("this consumer has applied this event") and the handler's effect commit together or
not at all, so a crash anywhere leaves either both or neither, and a redelivery finds the claim.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg

if TYPE_CHECKING:  # most services never touch Redis; importing it costs each ~0.3 s and MBs
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

Apply = Callable[[Any], Awaitable[None]]
"""The handler's effect, given the store's transaction: an asyncpg connection, a Redis pipeline."""


class Inbox(Protocol):
    async def apply_once(self, consumer: str, event_id: str, apply: Apply) -> bool:
        """Runs `apply` in a transaction with the claim; False, without running it, for a repeat.
        An exception from `apply` rolls everything back and propagates."""
        ...


FORGET_EXPIRED = "DELETE FROM inbox WHERE processed_at < now() - make_interval(secs => $1)"
"""Served by the B-tree on `processed_at`, not a scan of every claim kept."""

CLAIM_LIFETIME_SECONDS = 35 * 24 * 3600
"""Longer than every way an event can come back: the stream's retention and the dead-letter
replay window (both 30 days by default)."""


class PostgresInbox:
    """The `inbox` table from the messaging migration, in the service's own database. The
    handler gets the transaction's connection: its writes and its outbox rows commit with the claim.

    Claims older than `keep_seconds` are deleted by `forget_expired`, which the runtime runs hourly."""

    def __init__(self, pool: asyncpg.Pool, *, keep_seconds: float = CLAIM_LIFETIME_SECONDS):
        self._pool = pool
        self._keep = keep_seconds

    async def forget_expired(self) -> int:
        deleted = await self._pool.execute(FORGET_EXPIRED, self._keep)
        return int(deleted.split()[-1])

    async def apply_once(self, consumer: str, event_id: str, apply: Apply) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            # A concurrent delivery of the same event waits here on the first one's row lock,
            # then finds the claim once that commits (or takes it over if that rolls back).
            claimed = await conn.fetchval(
                "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
                consumer,
                event_id,
            )
            if not claimed:
                return False
            await apply(conn)
        return True


class RedisInbox:
    """For services whose state lives in Redis. The handler gets a pipeline already in MULTI:
    it queues its writes there (reads go through the ordinary client), and EXEC applies them
    together with the claim key `<prefix>inbox:<consumer>:<event_id>`. WATCH on that key makes
    a concurrent delivery of the same event lose the race instead of applying twice.

    Claims expire after `ttl_seconds`, which must outlast every way an event can come back."""

    def __init__(self, redis: Redis, prefix: str, *, ttl_seconds: int = CLAIM_LIFETIME_SECONDS):
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds

    async def apply_once(self, consumer: str, event_id: str, apply: Apply) -> bool:
        from redis.exceptions import WatchError

        key = f"{self._prefix}inbox:{consumer}:{event_id}"
        pipe: Pipeline
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            if await pipe.exists(key):
                return False
            pipe.multi()
            await apply(pipe)
            pipe.set(key, "1", ex=self._ttl)
            try:
                await pipe.execute()
            except WatchError:
                # Usually a concurrent delivery claimed it first. But redis-py reports a connection
                # lost at EXEC the same way: unless the claim is there, nothing was applied.
                if await self._redis.exists(key):
                    return False
                raise
        return True
