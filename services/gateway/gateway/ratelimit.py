"""Fixed-window rate limits kept in Redis, so every gateway replica shares one count.

Two ways to count. `hit` asks Redis on every call (INCR and EXPIRE in one round trip): exact,
for the rare, costly requests that attackers repeat (login, registration). `hit_fast` counts in
memory and adds the local counts to Redis every `sync_seconds` in one pipeline, reading back
the shared totals: at most `sync_seconds` behind the other replicas, and no network round trip
on the hot path of ordinary API calls.

If Redis cannot be reached, requests are judged on what this replica has counted: losing the
limiter must not take the shop down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from chassis.logs import get_logger

log = get_logger(__name__)
limiter_unavailable = Counter("agora_gateway_ratelimit_unavailable_total", "Rate-limit syncs that failed to reach Redis")
limited = Counter("agora_gateway_ratelimited_total", "Requests refused by a rate limit", ["scope"])


class Verdict(NamedTuple):
    """A named tuple: one is made for every API call, and a frozen dataclass costs more to make."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    counter: str = ""
    """The window's counter the hit went to, which `RateLimiter.refund` takes it back from."""

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


@dataclass
class _Window:
    shared: int = 0  # the total in Redis when last synced, every replica's hits included
    unsynced: int = 0  # this replica's hits since


class RateLimiter:
    def __init__(
        self, redis: Redis, prefix: str, *, window_seconds: int = 60, sync_seconds: float = 0.05,
        clock: Callable[[], float] = time.time,
    ):
        self._redis = redis
        self._prefix = prefix
        self._window = window_seconds
        self._sync_seconds = sync_seconds
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._task: asyncio.Task[None] | None = None

    def _key(self, scope: str, key: str) -> tuple[str, int]:
        now = self._clock()
        window = int(now // self._window)
        reset = max(1, int((window + 1) * self._window - now + 0.999))
        return f"{self._prefix}rl:{scope}:{key}:{window}", reset

    def _verdict(self, scope: str, count: int, limit: int, reset: int, counter: str) -> Verdict:
        allowed = count <= limit
        if not allowed:
            limited.labels(scope).inc()
        return Verdict(allowed, limit, max(0, limit - count), reset, counter)

    async def hit(self, scope: str, key: str, limit: int) -> Verdict:
        """Exact: one Redis round trip."""
        redis_key, reset = self._key(scope, key)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(redis_key)
                pipe.expire(redis_key, self._window + 1)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as error:
            limiter_unavailable.inc()
            log.warning("ratelimit_unavailable", error=str(error))
            return self.hit_fast(scope, key, limit)
        return self._verdict(scope, count, limit, reset, redis_key)

    async def refund(self, hit: Verdict) -> None:
        """Takes back a hit that turned out not to count (a login that succeeded), from the window
        it went to: in memory if Redis was away when it was counted, else in Redis."""
        window = self._windows.get(hit.counter)
        if window is not None:
            window.unsynced -= 1  # a sync carries it to Redis like any local count
            return
        try:
            await self._redis.decr(hit.counter)
        except (RedisError, OSError) as error:
            limiter_unavailable.inc()
            log.warning("ratelimit_unavailable", error=str(error))

    def hit_fast(self, scope: str, key: str, limit: int) -> Verdict:
        """In memory; Redis learns of it within `sync_seconds`."""
        redis_key, reset = self._key(scope, key)
        window = self._windows.get(redis_key)
        if window is None:
            window = self._windows[redis_key] = _Window()
        window.unsynced += 1
        return self._verdict(scope, window.shared + window.unsynced, limit, reset, redis_key)

    def peek(self, scope: str, key: str, limit: int) -> Verdict:
        """Where `key` stands in this window, as this replica last knew it, without a hit: for the
        requests that are never limited."""
        redis_key, reset = self._key(scope, key)
        window = self._windows.get(redis_key)
        count = window.shared + window.unsynced if window is not None else 0
        return Verdict(True, limit, max(0, limit - count), reset, redis_key)

    async def sync(self) -> None:
        """Adds local counts to Redis and reads back the shared totals; forgets past windows."""
        current = int(self._clock() // self._window)
        for redis_key in [k for k in self._windows if int(k.rsplit(":", 1)[1]) < current]:
            del self._windows[redis_key]
        pending = {key: window.unsynced for key, window in self._windows.items() if window.unsynced}
        if not pending:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for redis_key, count in pending.items():
                pipe.incrby(redis_key, count)
                pipe.expire(redis_key, self._window + 1)
            results = await pipe.execute()
        for (redis_key, count), total in zip(pending.items(), results[::2], strict=True):
            window = self._windows.get(redis_key)
            if window is not None:
                window.unsynced -= count
                window.shared = total

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sync_seconds)
            try:
                await self.sync()
            except (RedisError, OSError) as error:
                limiter_unavailable.inc()
                log.warning("ratelimit_sync_failed", error=str(error))
                await asyncio.sleep(1.0)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._sync_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self.sync()
