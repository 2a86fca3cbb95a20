"""Inboxes apply an event once per consumer, with the claim and the effect in one transaction."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import WatchError

from chassis.messaging import PostgresInbox, RedisInbox
from chassis.messaging.inbox import FORGET_EXPIRED
from tests.conftest import REDIS_URL, unique_city


@pytest.fixture
async def redis() -> AsyncIterator[tuple[Redis, str]]:
    client = Redis.from_url(REDIS_URL)
    prefix = f"{unique_city()}:cart:"
    yield client, prefix
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_redis_inbox_applies_the_effect_and_the_claim_together_once(redis) -> None:
    client, prefix = redis
    inbox = RedisInbox(client, prefix, ttl_seconds=60)
    event_id = str(uuid.uuid4())

    async def clear_cart(pipe) -> None:  # type: ignore[no-untyped-def]
        pipe.incr(f"{prefix}cleared")

    assert await inbox.apply_once("cart", event_id, clear_cart) is True
    assert await inbox.apply_once("cart", event_id, clear_cart) is False
    assert int(await client.get(f"{prefix}cleared")) == 1
    assert 0 < await client.ttl(f"{prefix}inbox:cart:{event_id}") <= 60


async def test_redis_inbox_leaves_no_claim_and_no_effect_when_the_handler_fails(redis) -> None:
    client, prefix = redis
    inbox = RedisInbox(client, prefix)
    event_id = str(uuid.uuid4())

    async def half_done(pipe) -> None:  # type: ignore[no-untyped-def]
        pipe.incr(f"{prefix}cleared")
        raise RuntimeError("catalog unreachable")

    with pytest.raises(RuntimeError):
        await inbox.apply_once("cart", event_id, half_done)
    assert await client.exists(f"{prefix}cleared", f"{prefix}inbox:cart:{event_id}") == 0


async def test_redis_inbox_lets_one_of_two_concurrent_deliveries_win(redis) -> None:
    client, prefix = redis
    inbox = RedisInbox(client, prefix)
    event_id = str(uuid.uuid4())
    both_inside = asyncio.Barrier(2)

    async def clear_cart(pipe) -> None:  # type: ignore[no-untyped-def]
        await both_inside.wait()  # both have checked the claim and found none
        pipe.incr(f"{prefix}cleared")

    results = await asyncio.gather(*(inbox.apply_once("cart", event_id, clear_cart) for _ in range(2)))
    assert sorted(results) == [False, True]
    assert int(await client.get(f"{prefix}cleared")) == 1


async def test_postgres_inbox_keeps_consumers_apart_and_rolls_back_with_the_handler(pool) -> None:
    inbox = PostgresInbox(pool)
    event_id = str(uuid.uuid4())

    async def effect(conn) -> None:  # type: ignore[no-untyped-def]
        await conn.execute("INSERT INTO effects VALUES ($1, 1)", event_id)

    async def failing(conn) -> None:  # type: ignore[no-untyped-def]
        await effect(conn)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await inbox.apply_once("first", event_id, failing)
    assert await pool.fetchval("SELECT count(*) FROM inbox") == 0
    assert await inbox.apply_once("first", event_id, effect) is True
    assert await inbox.apply_once("first", event_id, effect) is False
    assert await inbox.apply_once("second", event_id, effect) is True
    assert await pool.fetchval("SELECT count(*) FROM effects") == 2


async def test_postgres_inbox_applies_concurrent_deliveries_of_one_event_once(pool) -> None:
    inbox = PostgresInbox(pool)
    event_id = str(uuid.uuid4())

    async def slow_effect(conn) -> None:  # type: ignore[no-untyped-def]
        await conn.execute("INSERT INTO effects VALUES ($1, 1)", event_id)
        await asyncio.sleep(0.2)

    results = await asyncio.gather(*(inbox.apply_once("first", event_id, slow_effect) for _ in range(5)))
    assert sorted(results) == [False] * 4 + [True]
    assert await pool.fetchval("SELECT count(*) FROM effects") == 1


async def test_postgres_inbox_forgets_only_claims_older_than_it_keeps(pool) -> None:
    inbox = PostgresInbox(pool, keep_seconds=3600)
    old, recent = str(uuid.uuid4()), str(uuid.uuid4())

    async def nothing(conn) -> None:  # type: ignore[no-untyped-def]
        return None

    await inbox.apply_once("first", old, nothing)
    await inbox.apply_once("first", recent, nothing)
    await pool.execute("UPDATE inbox SET processed_at = now() - interval '2 hours' WHERE event_id = $1", uuid.UUID(old))

    assert await inbox.forget_expired() == 1
    assert await inbox.apply_once("first", recent, nothing) is False


async def test_postgres_inbox_finds_expired_claims_without_reading_every_claim(pool) -> None:
    """The hourly expiry deletes the oldest hour of 35 days of claims: it must not scan them all."""
    await pool.execute(
        "INSERT INTO inbox (consumer, event_id, processed_at)"
        " SELECT 'first', gen_random_uuid(), now() - make_interval(secs => (100000 - n) * 30.276)"
        " FROM generate_series(1, 100000) AS n"
    )
    await pool.execute("VACUUM ANALYZE inbox")
    plan = await pool.fetchval(f"EXPLAIN (FORMAT JSON) {FORGET_EXPIRED}", 35 * 24 * 3600)
    assert "inbox_processed_at" in plan and "Seq Scan" not in plan


async def test_redis_inbox_reports_an_aborted_transaction_without_a_claim_as_a_failure(redis) -> None:
    """A WATCH abort that left no claim (a lost connection looks the same) applied nothing:
    the delivery must fail and come back, not be taken for a repeat."""
    client, prefix = redis
    inbox = RedisInbox(client, prefix, ttl_seconds=60)
    event_id = str(uuid.uuid4())
    key = f"{prefix}inbox:cart:{event_id}"

    async def touched_meanwhile(pipe) -> None:  # type: ignore[no-untyped-def]
        await client.set(key, "someone")  # another client changes the watched key...
        await client.delete(key)  # ...and leaves no claim behind
        pipe.incr(f"{prefix}cleared")

    with pytest.raises(WatchError):
        await inbox.apply_once("cart", event_id, touched_meanwhile)
    assert await client.get(f"{prefix}cleared") is None

    async def clear_cart(pipe) -> None:  # type: ignore[no-untyped-def]
        pipe.incr(f"{prefix}cleared")

    assert await inbox.apply_once("cart", event_id, clear_cart) is True
    assert int(await client.get(f"{prefix}cleared")) == 1


async def test_the_expiry_reads_little_once_new_claims_have_filled_the_pages_old_ones_left(pool) -> None:
    """After the first expiries, vacuum hands the freed pages to new claims, so the table is no
    longer in time order. The expiry must still read only what it deletes, not every page that
    once held an old claim (a BRIN index's ranges only ever widen, and would lead it there)."""
    day = 24 * 3600
    await pool.execute(
        "INSERT INTO inbox (consumer, event_id, processed_at)"
        " SELECT 'first', gen_random_uuid(), now() - make_interval(secs => (40000 - n) * 151.2)"
        " FROM generate_series(1, 40000) AS n"
    )  # 70 days of claims, oldest first
    await pool.execute(FORGET_EXPIRED, 35 * day)
    await pool.execute("VACUUM inbox")
    await pool.execute(
        "INSERT INTO inbox (consumer, event_id, processed_at)"
        " SELECT 'first', gen_random_uuid(), now() - make_interval(secs => n) FROM generate_series(1, 20000) AS n"
    )  # today's claims, in the pages the expired ones left
    await pool.execute("ANALYZE inbox")

    [plan] = json.loads(await pool.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {FORGET_EXPIRED}", 35 * day))
    blocks = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
    table_blocks = await pool.fetchval("SELECT relpages FROM pg_class WHERE relname = 'inbox'")
    assert blocks < table_blocks / 5, f"the expiry read {blocks} blocks of a {table_blocks}-block table"
