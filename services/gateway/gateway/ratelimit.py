"""Fixed-window rate limits kept in Redis, so every gateway replica shares one count.

One round trip per request (INCR and EXPIRE in one pipeline). If Redis cannot be reached the
request is let through and the failure is counted: losing the limiter must not take the shop
down with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from chassis.logs import get_logger

log = get_logger(__name__)
limiter_unavailable = Counter("agora_gateway_ratelimit_unavailable_total", "Requests let through because Redis failed")
limited = Counter("agora_gateway_ratelimited_total", "Requests refused by a rate limit", ["scope"])


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str, *, window_seconds: int = 60):
        self._redis = redis
        self._prefix = prefix
        self._window = window_seconds

    async def hit(self, scope: str, key: str, limit: int) -> Verdict:
        now = time.time()
        window = int(now // self._window)
        reset = max(1, int((window + 1) * self._window - now + 0.999))
        redis_key = f"{self._prefix}rl:{scope}:{key}:{window}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(redis_key)
                pipe.expire(redis_key, self._window + 1)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as error:
            limiter_unavailable.inc()
            log.warning("ratelimit_unavailable", error=str(error))
            return Verdict(True, limit, limit, reset)
        allowed = count <= limit
        if not allowed:
            limited.labels(scope).inc()
        return Verdict(allowed, limit, max(0, limit - count), reset)
