"""Poison messages: bounded redelivery with backoff, then dead letters with the error; replay."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid

import asyncpg
import pytest
from prometheus_client import REGISTRY

from chassis.messaging import (
    Consumer,
    DeadLetter,
    Envelope,
    NatsBus,
    OutboxRelay,
    PostgresInbox,
    list_dead_letters,
    replay_all,
    replay_dead_letter,
)
from chassis.messaging.bus import Retention
from chassis.messaging.envelope import MalformedEvent
from tests.chassis.messaging.support import (
    THING_MADE,
    THINGS,
    amounts,
    effects_reach,
    eventually,
    make_thing,
    record_effect,
)


async def letters_reach(bus: NatsBus, count: int) -> None:
    async def reached() -> bool:
        return len(await list_dead_letters(bus)) >= count

    await eventually(reached)


def raw_event(event_type: str, data: dict[str, object]) -> Envelope:
    """An envelope built without validation, as a buggy or foreign producer might send it."""
    return Envelope(
        id=str(uuid.uuid4()), type=event_type, source="agora/things", time="2026-01-01T00:00:00Z", data=data
    )


async def test_a_failing_handler_is_retried_with_backoff_then_dead_lettered_and_replays_once(pool, bus) -> None:
    attempts: list[float] = []
    warehouse_up = False

    async def reserve(event: Envelope, conn: asyncpg.Connection) -> None:
        attempts.append(time.perf_counter())
        await record_effect(event, conn)  # rolled back with the failure below
        if not warehouse_up:
            raise ConnectionError("warehouse unreachable")

    consumer = Consumer(
        "watcher", bus, PostgresInbox(pool), {THING_MADE: reserve}, max_deliveries=4, retry_base_seconds=0.2
    )
    async with OutboxRelay(pool, bus, service="things"), consumer:
        event = await make_thing(pool, 3)
        await letters_reach(bus, 1)
        await asyncio.sleep(1)  # nothing comes back once dead-lettered
        assert len(attempts) == 4
        gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
        for gap, delay in zip(gaps, [0.2, 0.4, 0.8], strict=True):
            assert gap >= delay * 0.9, gaps
        assert await amounts(pool) == []

        [letter] = await list_dead_letters(bus, "watcher")
        assert letter.consumer == "watcher" and letter.deliveries == 4
        assert letter.error == "ConnectionError: warehouse unreachable"
        assert letter.event_id == event.id and letter.event_type == THING_MADE
        assert letter.origin == f"{bus.city}.things.ThingMade"
        assert Envelope.parse(letter.body) == event
        assert (
            REGISTRY.get_sample_value("agora_dead_letters_total", {"consumer": "watcher", "event_type": THING_MADE})
            >= 1
        )

        warehouse_up = True
        assert await replay_all(bus, "watcher") == 1
        await effects_reach(pool, 1)
        assert await list_dead_letters(bus) == []

        # The same event arriving yet again (an old copy replayed) finds the inbox claim.
        await bus.publish(letter.body, THING_MADE, msg_id="another-copy", headers={})
        await asyncio.sleep(1)
    assert await amounts(pool) == [3]
    assert len(attempts) == 5


async def test_malformed_messages_are_dead_lettered_at_once_and_the_consumer_keeps_going(pool, bus) -> None:
    handled: list[str] = []

    async def make(event: Envelope, conn: asyncpg.Connection) -> None:
        handled.append(event.id)
        await record_effect(event, conn)

    unknown = raw_event("agora.things.ThingVanished.v1", {"thing_id": "t"})
    async with Consumer("watcher", bus, PostgresInbox(pool), {THING_MADE: make, unknown.type: make}):
        await bus.publish(b"{not json", THING_MADE, msg_id="bad-json", headers={})
        await bus.publish(
            raw_event(THING_MADE, {"thing_id": "t", "amount": -1}).to_json(), THING_MADE, msg_id="bad-data", headers={}
        )
        await bus.publish(unknown.to_json(), unknown.type, msg_id="unknown", headers={})
        good = raw_event(THING_MADE, {"thing_id": "t", "amount": 1})
        await bus.publish(good.to_json(), THING_MADE, msg_id=good.id, headers={})
        await effects_reach(pool, 1)
        await letters_reach(bus, 3)

    letters = {letter.body: letter for letter in await list_dead_letters(bus, "watcher")}
    assert [letter.deliveries for letter in letters.values()] == [1, 1, 1]
    assert letters[b"{not json"].error.startswith("malformed: not JSON")
    bad_data = next(letter for body, letter in letters.items() if b'"amount":-1' in body)
    assert bad_data.error == f"malformed: {THING_MADE} data at amount: -1 is less than the minimum of 0"
    assert letters[unknown.to_json()].error.startswith(f"malformed: no schema for {unknown.type}")
    assert handled == [good.id]


async def test_a_message_the_parser_chokes_on_is_dead_lettered_at_once_not_left_to_redeliver(
    pool, bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    def choke(body: bytes) -> Envelope:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(Envelope, "parse", staticmethod(choke))
    async with Consumer("watcher", bus, PostgresInbox(pool), {THING_MADE: record_effect}):
        await bus.publish(b"[[[[", THING_MADE, msg_id="choke", headers={})
        await letters_reach(bus, 1)
    [letter] = await list_dead_letters(bus, "watcher")
    assert letter.deliveries == 1 and letter.body == b"[[[["
    assert letter.error == "malformed: unreadable (RecursionError: maximum recursion depth exceeded)"


async def test_replaying_one_dead_letter_sends_it_back_to_where_it_came_from(pool, bus) -> None:
    async with Consumer("watcher", bus, PostgresInbox(pool), {THING_MADE: record_effect}):
        await bus.publish(b"{not json", THING_MADE, msg_id="bad-json", headers={})
        await letters_reach(bus, 1)
        [letter] = await list_dead_letters(bus)
        assert (await replay_dead_letter(bus, letter.ref)).body == b"{not json"
        await letters_reach(bus, 1)  # still malformed: dead-lettered again, under a new ref
    [again] = await list_dead_letters(bus)
    assert again.ref != letter.ref and again.body == letter.body and again.origin == letter.origin


async def test_a_replay_goes_back_only_to_the_consumer_whose_letter_it_was(pool, bus) -> None:
    """Three consumers each dead-letter a malformed event; replaying each letter must give back
    three letters, not nine (then twenty-seven) as each consumer failed every copy again."""
    consumers = [Consumer(name, bus, PostgresInbox(pool), {THING_MADE: record_effect}) for name in ("a", "b", "c")]
    for consumer in consumers:
        await consumer.start()
    try:
        await bus.publish(b"{not json", THING_MADE, msg_id="bad-json", headers={})
        await letters_reach(bus, 3)
        for _ in range(2):
            assert await replay_all(bus) == 3
            await letters_reach(bus, 3)
            await asyncio.sleep(0.5)  # time for any extra letters a wrong replay would make
            letters = await list_dead_letters(bus)
            assert sorted(letter.consumer for letter in letters) == ["a", "b", "c"]
    finally:
        for consumer in consumers:
            await consumer.stop()


async def test_an_event_with_a_status_header_of_its_own_is_delivered_not_taken_for_a_server_notice(
    pool, bus
) -> None:
    """The server's pull notices carry `Status` too, but never a reply subject (an event's ack)."""
    async with Consumer("watcher", bus, PostgresInbox(pool), {THING_MADE: record_effect}):
        for amount, status in enumerate(("503", "100", "408")):
            event = Envelope.new("things", "ThingMade", {"thing_id": f"t{amount}", "amount": amount})
            await bus.publish(event.to_json(), THING_MADE, msg_id=event.id, headers={"Status": status})
        await effects_reach(pool, 3)
    assert await amounts(pool) == [0, 1, 2]


async def test_an_event_too_large_for_its_stream_is_refused_with_its_state_change(pool) -> None:
    """Accepted, it would commit and then be refused by the broker on every relay pass."""
    huge = "x" * Retention().max_event_bytes
    async with pool.acquire() as conn:
        with pytest.raises(MalformedEvent, match="bytes; a stream takes"):
            async with conn.transaction():
                await conn.execute("INSERT INTO effects VALUES (gen_random_uuid(), 1)")
                await THINGS.add(conn, "ThingMade", {"thing_id": huge, "amount": 1})
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    assert await pool.fetchval("SELECT count(*) FROM effects") == 0


@pytest.mark.parametrize("body", [b"\x01" * 3000, "\U0001f600".encode() * 1000, b"\xff\xfe" * 1500])
def test_a_letter_is_never_much_bigger_than_its_message(body: bytes) -> None:
    letter = DeadLetter("watcher", "city.things.ThingMade", "malformed: not JSON", 1, "2026-01-01T00:00:00Z", body)

    encoded = letter.to_json()

    assert len(encoded) <= 2 * len(body) + 400
    assert DeadLetter.from_json(encoded, ref="1") == letter


def test_a_readable_message_stays_readable_in_its_letter() -> None:
    body = b'{"id": "x", "note": "caf\xc3\xa9"}'
    letter = DeadLetter("watcher", "city.things.ThingMade", "malformed: no schema", 1, "2026-01-01T00:00:00Z", body)

    assert json.loads(letter.to_json())["body"] == body.decode()


async def test_the_largest_message_a_stream_takes_can_still_be_dead_lettered(pool, bus) -> None:
    limit = Retention().max_event_bytes
    with pytest.raises(Exception, match=r"(?i)size"):
        await bus.publish(b"\x01" * (limit + 1), THING_MADE, msg_id="too-big", headers={})

    worst = b"\x01" * (limit - 1024)  # room for the headers; valid UTF-8, yet 6 bytes each as JSON text
    async with Consumer("watcher", bus, PostgresInbox(pool), {THING_MADE: record_effect}):
        await bus.publish(worst, THING_MADE, msg_id="worst", headers={})
        await letters_reach(bus, 1)
    [letter] = await list_dead_letters(bus, "watcher")
    assert letter.body == worst and letter.error.startswith("malformed: not JSON")
