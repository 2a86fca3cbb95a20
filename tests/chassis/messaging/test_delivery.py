"""Nothing lost, nothing applied twice: outbox → relay → JetStream → inbox → handler."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time

import asyncpg
import pytest
from prometheus_client import REGISTRY

from chassis.messaging import Consumer, Envelope, NatsBus, OutboxRelay, PostgresInbox
from tests.chassis.messaging.support import (
    THING_MADE,
    THINGS,
    amounts,
    effects_reach,
    eventually,
    kill,
    make_thing,
    record_effect,
    start_worker,
)
from tests.conftest import NATS_URL


def relay_for(pool: asyncpg.Pool, bus: NatsBus) -> OutboxRelay:
    return OutboxRelay(pool, bus, service="things", poll_interval=0.2, standby_interval=0.2)


def consumer_for(pool: asyncpg.Pool, bus: NatsBus, **options: object) -> Consumer:
    return Consumer("watcher", bus, PostgresInbox(pool), {THING_MADE: record_effect}, **options)  # type: ignore[arg-type]


async def stream_messages(bus: NatsBus) -> int:
    info = await bus.jetstream.stream_info(f"{bus.city}_THINGS".upper())
    return info.state.messages


async def unpublished(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")


async def test_committed_events_are_published_and_a_republish_is_deduplicated(pool, bus) -> None:
    async with relay_for(pool, bus):
        events = [await make_thing(pool, n) for n in range(3)]
        await eventually(lambda: _equals(unpublished(pool), 0))
        assert await stream_messages(bus) == 3
        # As after a crash between publish and mark: the relay sends the rows again.
        await pool.execute("UPDATE outbox SET published_at = NULL")
        await eventually(lambda: _equals(unpublished(pool), 0))
        assert await stream_messages(bus) == 3
    # The pool does not reset connections: the stopped relay gave its lock back itself.
    assert await pool.fetchval(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
        " WHERE l.locktype = 'advisory' AND d.datname = current_database()"
    ) == 0

    message = await bus.jetstream.get_msg(f"{bus.city}_THINGS".upper(), seq=1)
    assert message.headers["Nats-Msg-Id"] == events[0].id
    assert message.headers["Ce-Type"] == THING_MADE
    assert message.subject == f"{bus.city}.things.ThingMade"
    envelope = json.loads(message.data)
    assert envelope["specversion"] == "1.0" and envelope["id"] == events[0].id
    assert envelope["source"] == "agora/things" and envelope["subject"] == "thing-0"
    assert envelope["dataschema"] == "events/things/ThingMade.v1.json"
    assert envelope["datacontenttype"] == "application/json"
    assert envelope["data"] == {"thing_id": "thing-0", "amount": 0}
    assert REGISTRY.get_sample_value("agora_outbox_published_total", {"service": "things"}) >= 6


async def test_a_published_batch_is_marked_by_the_relays_next_statement_or_when_it_stops(pool, bus) -> None:
    """Marking rides on the statement that reads the next batch: each event is published once
    however long its mark waits, and a stopping relay marks what it published."""

    def published() -> float:
        return REGISTRY.get_sample_value("agora_outbox_published_total", {"service": "things"}) or 0.0

    before = published()
    async with OutboxRelay(pool, bus, service="things", poll_interval=0.1, mark_delay=3600):
        for n in range(3):
            await make_thing(pool, n)
            await eventually(lambda n=n: _is_true(published() - before == n + 1))  # type: ignore[misc]
        await asyncio.sleep(0.5)
        assert published() - before == 3 and await stream_messages(bus) == 3
        # The first two were marked by the passes that read their successors; the last one waits.
        assert await unpublished(pool) == 1
    assert await unpublished(pool) == 0
    assert published() - before == 3


async def _equals(value, expected) -> bool:  # type: ignore[no-untyped-def]
    return await value == expected


async def _is_true(value: bool) -> bool:
    return value


async def test_an_event_is_applied_once_and_its_effect_commits_with_the_inbox(pool, bus) -> None:
    async with relay_for(pool, bus), consumer_for(pool, bus):
        event = await make_thing(pool, 7)
        await effects_reach(pool, 1)
    assert await amounts(pool) == [7]
    assert await pool.fetchval("SELECT consumer FROM inbox WHERE event_id = $1", event.id) == "watcher"


async def test_rolled_back_events_are_never_published(pool, bus) -> None:
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await THINGS.add(conn, "ThingMade", {"thing_id": "t", "amount": 1})
            raise RuntimeError("a business rule failed after the event was recorded")
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_late_committing_lower_ids_are_not_skipped(pool, bus) -> None:
    async with relay_for(pool, bus), consumer_for(pool, bus):
        slow = await pool.acquire()
        transaction = slow.transaction()
        await transaction.start()
        await THINGS.add(slow, "ThingMade", {"thing_id": "slow", "amount": 1})  # takes the lower id
        await make_thing(pool, 2)
        await effects_reach(pool, 1)
        assert await amounts(pool) == [2]
        await transaction.commit()
        await pool.release(slow)
        await effects_reach(pool, 2)
    assert await amounts(pool) == [1, 2]


async def test_a_relay_killed_after_publishing_and_before_marking_loses_and_duplicates_nothing(
    pool, bus, dsn, city
) -> None:
    for n in range(3):
        await make_thing(pool, n)
    dying = start_worker("relay", dsn, NATS_URL, city, "dying", "--die-after-publish")
    try:
        assert await asyncio.to_thread(dying.wait, 30) == -9
    finally:
        kill(dying)
    assert await stream_messages(bus) >= 1
    assert await unpublished(pool) == 3

    async with relay_for(pool, bus), consumer_for(pool, bus):
        await eventually(lambda: _equals(unpublished(pool), 0))
        await effects_reach(pool, 3)
        await asyncio.sleep(0.5)
    assert await stream_messages(bus) == 3
    assert await amounts(pool) == [0, 1, 2]


async def test_a_consumer_killed_after_commit_and_before_ack_does_not_apply_twice(pool, bus, dsn, city) -> None:
    async with relay_for(pool, bus):
        event = await make_thing(pool, 5)
        await eventually(lambda: _equals(unpublished(pool), 0))
    dying = start_worker("consume", dsn, NATS_URL, city, "--die-before-ack")
    try:
        assert await asyncio.to_thread(dying.wait, 30) == -9
    finally:
        kill(dying)
    assert await amounts(pool) == [5]

    duplicates = {"consumer": "watcher", "event_type": THING_MADE, "outcome": "duplicate"}
    before = REGISTRY.get_sample_value("agora_events_consumed_total", duplicates) or 0
    async with consumer_for(pool, bus):  # the unacked delivery comes back after ack_wait
        await eventually(lambda: _metric_above("agora_events_consumed_total", duplicates, before))
    assert await amounts(pool) == [5]
    assert await pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", event.id) == 1


async def _metric_above(name: str, labels: dict[str, str], value: float) -> bool:
    return (REGISTRY.get_sample_value(name, labels) or 0) > value


async def test_two_relays_take_turns_and_the_standby_takes_over_when_the_leader_dies(pool, bus, dsn, city) -> None:
    first = start_worker("relay", dsn, NATS_URL, city, "first")
    await eventually(lambda: _lock_holder_is(pool, "first"))
    second = start_worker("relay", dsn, NATS_URL, city, "second")
    try:
        async with consumer_for(pool, bus):
            for n in range(10):
                await make_thing(pool, n)
            await effects_reach(pool, 10)
            assert await _lock_holder_is(pool, "first")
            kill(first)
            await eventually(lambda: _lock_holder_is(pool, "second"))
            for n in range(10, 20):
                await make_thing(pool, n)
            await effects_reach(pool, 20)
            await asyncio.sleep(0.5)
    finally:
        kill(first)
        kill(second)
    assert await amounts(pool) == list(range(20))
    publishers = [await _published_by(bus, seq) for seq in range(1, 21)]
    assert publishers == ["first"] * 10 + ["second"] * 10


async def test_a_standby_takes_over_from_a_leader_that_froze_with_its_connection_open(pool, bus, dsn, city) -> None:
    """A frozen process (SIGSTOP here; a paused machine alike) keeps its socket, so Postgres
    would keep its session and the lock: the leader's session ends once idle too long."""
    first = start_worker("relay", dsn, NATS_URL, city, "first")
    await eventually(lambda: _lock_holder_is(pool, "first"))
    second = start_worker("relay", dsn, NATS_URL, city, "second")
    try:
        async with consumer_for(pool, bus):
            await asyncio.sleep(0.5)
            os.kill(first.pid, signal.SIGSTOP)
            await eventually(lambda: _lock_holder_is(pool, "second"), timeout=20)
            for n in range(5):
                await make_thing(pool, n)
            await effects_reach(pool, 5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(first.pid, signal.SIGCONT)
        kill(first)
        kill(second)
    assert await amounts(pool) == list(range(5))
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def _lock_holder_is(pool: asyncpg.Pool, name: str) -> bool:
    holders = await pool.fetch(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
        " WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"
    )
    return [row["application_name"] for row in holders] == [name]


async def _published_by(bus: NatsBus, seq: int) -> str:
    message = await bus.jetstream.get_msg(f"{bus.city}_THINGS".upper(), seq=seq)
    return message.headers["relay"]


async def test_many_producers_at_once_are_each_delivered_exactly_once(pool, bus, city) -> None:
    second_bus = NatsBus(NATS_URL, city, ack_wait_seconds=2)
    await second_bus.connect()
    try:
        async with (
            relay_for(pool, bus),
            consumer_for(pool, bus, concurrency=8),
            consumer_for(pool, second_bus, concurrency=8),
        ):  # two instances share the durable consumer
            await asyncio.gather(*(_produce_many(pool, start) for start in range(0, 400, 20)))
            await effects_reach(pool, 400)
            await asyncio.sleep(0.5)
    finally:
        await second_bus.close()
    assert await amounts(pool) == list(range(400))
    assert await pool.fetchval("SELECT count(DISTINCT event_id) FROM effects") == 400


async def _produce_many(pool: asyncpg.Pool, start: int) -> None:
    for n in range(start, start + 20):
        await make_thing(pool, n)


async def test_an_idle_city_delivers_an_event_within_milliseconds_of_its_commit(pool, bus) -> None:
    delivered: dict[str, float] = {}

    async def timestamp(event: Envelope, conn: asyncpg.Connection) -> None:
        delivered[event.id] = time.perf_counter()

    latencies = []
    async with relay_for(pool, bus), Consumer("timer", bus, PostgresInbox(pool), {THING_MADE: timestamp}):
        await make_thing(pool, 0)  # warms up stream, consumer and connections
        await eventually(lambda: _has(delivered, 1))
        for n in range(1, 41):
            async with pool.acquire() as conn:
                async with conn.transaction():
                    event = await THINGS.add(conn, "ThingMade", {"thing_id": "t", "amount": n})
                committed = time.perf_counter()
            await eventually(lambda count=n + 1: _has(delivered, count), timeout=5)
            latencies.append(delivered[event.id] - committed)
    latencies.sort()
    median = latencies[len(latencies) // 2]
    print(f"commit to handler: p50 {median * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
    assert median < 0.025  # the target is 5 ms on an idle machine; this one is shared by many test runs


async def _has(delivered: dict[str, float], count: int) -> bool:
    return len(delivered) >= count
