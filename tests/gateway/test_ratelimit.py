"""Rate limits against the real Redis: exact for logins, batched for ordinary calls, shared by replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.ratelimit import RateLimiter
from tests.conftest import REDIS_URL, unique_city


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"{unique_city()}:gateway:"


async def test_the_exact_limit_refuses_the_attempt_past_it_with_retry_after(redis: Redis, prefix: str) -> None:
    limiter = RateLimiter(redis, prefix)
    verdicts = [await limiter.hit("login", "victim|1.2.3.4", 10) for _ in range(11)]
    assert [v.allowed for v in verdicts] == [True] * 10 + [False]
    assert verdicts[9].remaining == 0
    headers = verdicts[10].headers()
    assert int(headers["Retry-After"]) >= 1 and headers["RateLimit-Limit"] == "10"


async def test_replicas_share_one_count_through_redis(redis: Redis, prefix: str) -> None:
    first, second = RateLimiter(redis, prefix), RateLimiter(redis, prefix)
    for _ in range(6):
        assert first.hit_fast("api", "user:1", 10).allowed
    await first.sync()
    for _ in range(4):
        assert second.hit_fast("api", "user:1", 10).allowed
    await second.sync()
    assert not second.hit_fast("api", "user:1", 10).allowed
    assert second.hit_fast("api", "user:2", 10).allowed


async def test_the_sync_loop_runs_until_stopped_and_flushes_on_stop(redis: Redis, prefix: str) -> None:
    limiter = RateLimiter(redis, prefix, sync_seconds=0.01)
    await limiter.start()
    limiter.hit_fast("api", "addr:9", 100)
    await asyncio.sleep(0.1)
    limiter.hit_fast("api", "addr:9", 100)
    await limiter.stop()
    keys = [key async for key in redis.scan_iter(f"{prefix}rl:api:addr:9:*")]
    assert len(keys) == 1 and int(await redis.get(keys[0])) == 2


async def test_without_redis_each_replica_still_limits_on_its_own() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    limiter = RateLimiter(unreachable, "nowhere:")
    assert (await limiter.hit("login", "x", 1)).allowed
    assert not (await limiter.hit("login", "x", 1)).allowed
    await unreachable.aclose()


async def test_a_new_window_starts_a_new_count(redis: Redis, prefix: str) -> None:
    now = [1000.0]
    limiter = RateLimiter(redis, prefix, window_seconds=60, clock=lambda: now[0])
    assert limiter.hit_fast("api", "u", 1).allowed
    assert not limiter.hit_fast("api", "u", 1).allowed
    now[0] += 60
    assert limiter.hit_fast("api", "u", 1).allowed
    await limiter.sync()


async def test_a_refunded_hit_no_longer_counts_in_the_window_it_was_taken_from(redis: Redis, prefix: str) -> None:
    now = [1000.0]
    limiter = RateLimiter(redis, prefix, window_seconds=60, clock=lambda: now[0])
    hits = [await limiter.hit("login", "ada|1.2.3.4", 3) for _ in range(3)]
    for hit in hits[:2]:
        await limiter.refund(hit)
    assert [(await limiter.hit("login", "ada|1.2.3.4", 3)).allowed for _ in range(3)] == [True, True, False]

    late = await limiter.hit("login", "bob|1.2.3.4", 1)
    now[0] += 60  # the refund arrives in the next window: it is taken from the one the hit went to
    await limiter.refund(late)
    assert [(await limiter.hit("login", "bob|1.2.3.4", 1)).allowed for _ in range(2)] == [True, False]


async def test_a_hit_counted_in_memory_while_redis_was_away_is_refunded_there() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    limiter = RateLimiter(unreachable, "nowhere:")
    await limiter.refund(await limiter.hit("login", "x", 1))
    assert (await limiter.hit("login", "x", 1)).allowed
    assert not (await limiter.hit("login", "x", 1)).allowed
    await unreachable.aclose()


async def test_a_peek_tells_where_a_key_stands_without_counting(redis: Redis, prefix: str) -> None:
    limiter = RateLimiter(redis, prefix)
    assert limiter.peek("api", "u", 2) == limiter.peek("api", "u", 2)
    assert limiter.peek("api", "u", 2).remaining == 2
    limiter.hit_fast("api", "u", 2)
    limiter.hit_fast("api", "u", 2)
    peeked = limiter.peek("api", "u", 2)
    assert peeked.allowed and peeked.remaining == 0
    assert not limiter.hit_fast("api", "u", 2).allowed  # the peeks took nothing
