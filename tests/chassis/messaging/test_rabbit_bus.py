"""The same code above the adapter, on RabbitMQ: delivered once, retried with backoff,
dead-lettered with the error, replayed."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest

from chassis.messaging import (
    Consumer,
    Envelope,
    OutboxRelay,
    PermanentFailure,
    PostgresInbox,
    list_dead_letters,
    replay_all,
)
from chassis.messaging.bus import EVENT_TYPE_HEADER, DeadLetter, Delivery, Retention
from chassis.messaging.rabbit_bus import ATTEMPTS_HEADER, RabbitBus
from tests.chassis.messaging.support import (
    THING_MADE,
    amounts,
    effects_reach,
    eventually,
    make_thing,
    record_effect,
)
from tests.conftest import RABBITMQ_URL


@pytest.fixture
async def rabbit(city: str) -> AsyncIterator[RabbitBus]:
    bus = RabbitBus(RABBITMQ_URL, city)
    await bus.connect()
    yield bus
    await bus.delete_everything()
    await bus.close()


async def letters_reach(bus: RabbitBus, count: int) -> None:
    async def reached() -> bool:
        return len(await list_dead_letters(bus)) >= count

    await eventually(reached)


async def test_outbox_events_reach_a_rabbitmq_consumer_once_even_when_published_twice(pool, rabbit) -> None:
    async with (
        OutboxRelay(pool, rabbit, service="things", poll_interval=0.2),
        Consumer("watcher", rabbit, PostgresInbox(pool), {THING_MADE: record_effect}),
    ):
        for n in range(5):
            await make_thing(pool, n)
        await effects_reach(pool, 5)
        await pool.execute("UPDATE outbox SET published_at = NULL")  # as after a relay crash
        await eventually(lambda: _all_published(pool))
        await asyncio.sleep(0.5)
    assert await amounts(pool) == list(range(5))


async def _all_published(pool: asyncpg.Pool) -> bool:
    return await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_a_failing_handler_on_rabbitmq_backs_off_then_is_dead_lettered_and_replayed(pool, rabbit) -> None:
    attempts: list[float] = []
    warehouse_up = False

    async def reserve(event: Envelope, conn: asyncpg.Connection) -> None:
        attempts.append(time.perf_counter())
        if not warehouse_up:
            raise ConnectionError("warehouse unreachable")
        await record_effect(event, conn)

    consumer = Consumer(
        "watcher", rabbit, PostgresInbox(pool), {THING_MADE: reserve}, max_deliveries=3, retry_base_seconds=0.2
    )
    async with consumer:
        event = Envelope.new("things", "ThingMade", {"thing_id": "t", "amount": 4}, subject="t")
        await rabbit.publish(event.to_json(), THING_MADE, msg_id=event.id, headers={})
        await rabbit.publish(b"not an event", THING_MADE, msg_id="junk", headers={})
        await letters_reach(rabbit, 2)
        await asyncio.sleep(0.5)
        assert len(attempts) == 3
        gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
        assert gaps[0] >= 0.18 and gaps[1] >= 0.36, gaps

        letters = {letter.deliveries: letter for letter in await list_dead_letters(rabbit, "watcher")}
        assert letters[1].body == b"not an event" and letters[1].error.startswith("malformed")
        assert letters[3].error == "ConnectionError: warehouse unreachable"
        assert letters[3].event_id == event.id and letters[3].origin == f"{rabbit.city}.things.ThingMade"
        assert len(await list_dead_letters(rabbit)) == 2  # listing leaves them in place

        warehouse_up = True
        await replay_all(rabbit, "watcher")
        await effects_reach(pool, 1)
        await letters_reach(rabbit, 1)  # the junk is dead-lettered again
    assert await amounts(pool) == [4]
    [junk] = await list_dead_letters(rabbit)
    assert junk.body == b"not an event"


async def test_an_attempt_count_a_publisher_set_to_junk_or_below_zero_counts_from_zero(pool, rabbit) -> None:
    """`x-agora-attempts` is ours, but any publisher can set it. Unreadable, it used to raise in
    aio_pika's callback, leaving the message unsettled and its prefetch slot taken for ever (here
    three such messages would stall a consumer of two); negative, it kept the deliveries below
    `max_deliveries` and the backoff near zero: a hot loop that never dead-lettered."""
    calls: list[float] = []

    async def handle(event: Envelope, conn: asyncpg.Connection) -> None:
        if event.data["amount"] == 1:
            calls.append(time.perf_counter())
            raise ConnectionError("warehouse unreachable")
        await record_effect(event, conn)

    exchange = await rabbit._exchange("things")

    async def publish(amount: int, attempts: object) -> None:
        event = Envelope.new("things", "ThingMade", {"thing_id": f"t{amount}", "amount": amount}, subject=f"t{amount}")
        message = aio_pika.Message(event.to_json(), message_id=event.id,
                                   headers={ATTEMPTS_HEADER: attempts, EVENT_TYPE_HEADER: THING_MADE})
        await exchange.publish(message, routing_key=f"{rabbit.city}.things.ThingMade")

    consumer = Consumer("watcher", rabbit, PostgresInbox(pool), {THING_MADE: handle},
                        concurrency=2, max_deliveries=3, retry_base_seconds=0.2)
    async with consumer:
        for amount, attempts in [(10, "oops"), (11, "2.5"), (12, 1.5), (1, -1000000)]:
            await publish(amount, attempts)
        await rabbit.publish(Envelope.new("things", "ThingMade", {"thing_id": "t0", "amount": 0}).to_json(),
                             THING_MADE, msg_id="plain", headers={})
        await effects_reach(pool, 4)
        await letters_reach(rabbit, 1)
        await asyncio.sleep(0.5)
    assert await amounts(pool) == [0, 10, 11, 12]
    [letter] = await list_dead_letters(rabbit)
    assert letter.deliveries == 3 and letter.error == "ConnectionError: warehouse unreachable"
    assert len(calls) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert gaps[0] >= 0.18 and gaps[1] >= 0.36, gaps


async def test_a_delivery_whose_handler_raises_is_requeued_and_never_holds_its_slot(rabbit) -> None:
    """Whatever escapes the handler, the message is settled: requeued, and moved to dead letters by
    the queue's delivery limit if it keeps failing. Unsettled, it held the consumer's only slot."""
    handled: list[bytes] = []

    async def handle(delivery: Delivery) -> None:
        if delivery.body == b"boom":
            raise RuntimeError("a bug above the adapter")
        handled.append(delivery.body)
        await delivery.ack()

    subscription = await rabbit.subscribe("watcher", [THING_MADE], handle, concurrency=1, max_deliveries=0)
    try:
        await rabbit.publish(b"boom", THING_MADE, msg_id="boom", headers={})
        await rabbit.publish(b"fine", THING_MADE, msg_id="fine", headers={})
        await letters_reach(rabbit, 1)

        async def fine_handled() -> bool:
            return handled == [b"fine"]

        await eventually(fine_handled)
    finally:
        await subscription.stop()
    [letter] = await list_dead_letters(rabbit)
    assert letter.body == b"boom" and letter.error == "delivery limit reached without an outcome"


async def test_a_message_dead_lettered_twice_by_a_consumer_that_died_before_its_ack_is_one_letter(rabbit) -> None:
    """The consumer stores the letter, dies before acking the message, and stores it again on the
    redelivery. RabbitMQ does not deduplicate; a letter's id is its consumer and message, and
    listing keeps the newest letter of each id."""
    first = DeadLetter(consumer="watcher", origin=f"{rabbit.city}.things.ThingMade", error="KeyError: 'sku'",
                       deliveries=8, dead_lettered_at="2026-11-24T10:00:00Z", body=b"{}", message_ref="event-1")
    again = dataclasses.replace(first, deliveries=9, dead_lettered_at="2026-11-24T10:00:31Z")
    other = dataclasses.replace(first, consumer="auditor")
    for letter in (first, other, again):
        await rabbit.dead_letter(letter)

    assert await list_dead_letters(rabbit) == [again, other]
    assert await list_dead_letters(rabbit) == [again, other]  # and the broker now holds just these
    dead_letters = await rabbit.channel.get_queue(rabbit.dlq_name)
    held = [letter async for letter in _every_message(dead_letters)]
    assert len(held) == 2
    for letter in held:
        await letter.reject(requeue=True)


async def test_a_replay_goes_only_to_the_consumer_that_dead_lettered_it(pool, rabbit) -> None:
    """Three consumers of one type; two give up on an event, and still do after a replay. Replayed
    through the producer's exchange, each letter reached all three: every failing consumer got it
    twice and dead-lettered it twice (k consumers, k² letters, then k³), and the healthy one got
    both copies too."""
    calls: dict[str, int] = {"watcher": 0, "auditor": 0}

    def refusing(name: str):  # type: ignore[no-untyped-def]
        async def refuse(event: Envelope, conn: asyncpg.Connection) -> None:
            calls[name] += 1
            raise PermanentFailure(f"{name} refuses")

        return refuse

    healthy = await rabbit.settle_consumer("keeper", [THING_MADE])
    async with (
        Consumer("watcher", rabbit, PostgresInbox(pool), {THING_MADE: refusing("watcher")}),
        Consumer("auditor", rabbit, PostgresInbox(pool), {THING_MADE: refusing("auditor")}),
    ):
        event = Envelope.new("things", "ThingMade", {"thing_id": "t", "amount": 4}, subject="t")
        await rabbit.publish(event.to_json(), THING_MADE, msg_id=event.id, headers={})
        await letters_reach(rabbit, 2)
        assert await replay_all(rabbit) == 2

        async def each_tried_twice() -> bool:
            return calls == {"watcher": 2, "auditor": 2}

        await eventually(each_tried_twice)
        await asyncio.sleep(0.5)
        assert calls == {"watcher": 2, "auditor": 2}
    letters = await list_dead_letters(rabbit)
    assert sorted((letter.consumer, letter.error) for letter in letters) == [
        ("auditor", "PermanentFailure: auditor refuses"), ("watcher", "PermanentFailure: watcher refuses")
    ]
    assert all(letter.origin == f"{rabbit.city}.things.ThingMade" for letter in letters)
    original = await eventually_get(healthy)
    await original.ack()
    assert await healthy.get(no_ack=False, fail=False) is None  # the replays went past the healthy one


async def test_replaying_to_a_consumer_whose_queue_is_gone_keeps_the_letter(rabbit) -> None:
    """A publish no queue takes is still confirmed: replay asks the broker to return it instead."""
    letter = DeadLetter(consumer="gone", origin=f"{rabbit.city}.things.ThingMade", error="boom", deliveries=8,
                        dead_lettered_at="2026-11-24T10:00:00Z", body=b"{}", message_ref="event-1")
    await rabbit.dead_letter(letter)
    [listed] = await list_dead_letters(rabbit)
    with pytest.raises(LookupError, match="no queue"):
        await rabbit.replay(listed)
    assert await list_dead_letters(rabbit) == [letter]


async def test_replay_takes_one_pass_and_an_interrupted_one_leaves_no_letter_twice(rabbit) -> None:
    """Replay took every letter and stored back the others for each one: 200 letters outlasted the
    15 s `agora dlq` gave the whole command, and each interrupted run could leave letters twice.
    Here a replay of 300 (between another consumer's letters) is cut off a third of the way, as by
    a timeout, and run again in full."""

    def letter(consumer: str, n: int) -> DeadLetter:
        return DeadLetter(consumer=consumer, origin=f"{rabbit.city}.things.ThingMade", error="boom", deliveries=8,
                          dead_lettered_at="2026-11-24T10:00:00Z", body=b'{"n": %d}' % n, event_type=THING_MADE,
                          message_ref=f"{consumer}-event-{n}")

    watcher = await rabbit.settle_consumer("watcher", [THING_MADE])
    await rabbit.settle_consumer("auditor", [THING_MADE])
    for n in range(300):
        await rabbit.dead_letter(letter("watcher", n))
        if n % 10 == 0:
            await rabbit.dead_letter(letter("auditor", n))
    replayed: list[bytes] = []

    async def receive(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        replayed.append(message.body)
        await message.ack()

    tag = await watcher.consume(receive)

    async def replay_watchers_letters(timeout: float | None) -> int:
        cli = RabbitBus(RABBITMQ_URL, rabbit.city)  # a process of its own, as `agora dlq replay` is
        await cli.connect()
        try:
            if timeout is not None:
                return await asyncio.wait_for(replay_all(cli, "watcher"), timeout)
            whole_replay, started = cli.replay, 0

            async def cut_off_in_the_101st(letter: DeadLetter) -> None:
                # Cancelled inside the 101st letter's replay, as a timeout would, wherever it waits.
                nonlocal started
                started += 1
                if started == 101:
                    asyncio.current_task().cancel()  # type: ignore[union-attr]
                await whole_replay(letter)

            cli.replay = cut_off_in_the_101st  # type: ignore[method-assign]
            await asyncio.gather(replay_all(cli, "watcher"), return_exceptions=True)
            return 0
        finally:
            await cli.close()

    await replay_watchers_letters(None)
    assert len(replayed) < 300
    started = time.perf_counter()
    left = await replay_watchers_letters(timeout=15)
    assert time.perf_counter() - started < 15 and 0 < left < 300

    async def all_replayed() -> bool:
        return len(set(replayed)) == 300

    await eventually(all_replayed)
    await watcher.cancel(tag)
    assert len(replayed) <= 301  # the letter in flight when the first run was cut off
    letters = await list_dead_letters(rabbit)
    assert sorted(letter.message_ref for letter in letters) == sorted(f"auditor-event-{n}" for n in range(0, 300, 10))


async def test_events_published_before_their_consumer_first_runs_wait_in_its_declared_queue(pool, rabbit) -> None:
    """RabbitMQ drops what no queue is bound for: `agora up` declares each consumer's queue first."""
    await rabbit.settle_consumer("watcher", [THING_MADE])
    async with OutboxRelay(pool, rabbit, service="things", poll_interval=0.2):
        for n in range(3):
            await make_thing(pool, n)
        await eventually(lambda: _all_published(pool))
    async with Consumer("watcher", rabbit, PostgresInbox(pool), {THING_MADE: record_effect}):
        await effects_reach(pool, 3)
    assert await amounts(pool) == [0, 1, 2]


async def test_a_queue_an_earlier_agora_declared_with_other_limits_is_kept_with_its_events(pool, rabbit) -> None:
    """A quorum queue's arguments never change: a consumer whose delivery limit differs from the
    one its queue was declared with (an upgrade) uses the queue as it is, and the events that
    waited in it, rather than failing to start or dropping them."""
    await rabbit.settle_consumer("watcher", [THING_MADE], max_deliveries=5)
    async with OutboxRelay(pool, rabbit, service="things", poll_interval=0.2):
        for n in range(3):
            await make_thing(pool, n)
        await eventually(lambda: _all_published(pool))
    async with Consumer("watcher", rabbit, PostgresInbox(pool), {THING_MADE: record_effect}, max_deliveries=12):
        await effects_reach(pool, 3)
        await make_thing(pool, 3)
        async with OutboxRelay(pool, rabbit, service="things", poll_interval=0.2):
            await effects_reach(pool, 4)
    assert await amounts(pool) == [0, 1, 2, 3]
    queue = await rabbit.channel.declare_queue(rabbit.queue_name("watcher"), passive=True)
    assert queue.declaration_result.message_count == 0


async def test_a_dead_letter_queue_an_earlier_agora_declared_with_another_retention_keeps_its_letters(rabbit) -> None:
    """The same for the dead letters: a city whose retention changed still parks and lists them."""
    earlier = DeadLetter(consumer="watcher", origin=f"{rabbit.city}.things.ThingMade", error="KeyError: 'sku'",
                         deliveries=8, dead_lettered_at="2026-11-24T10:00:00Z", body=b'{"not": "known"}')
    await rabbit.dead_letter(earlier)
    later = RabbitBus(RABBITMQ_URL, rabbit.city, retention=Retention(max_bytes=512 * 1024**2))
    await later.connect()
    try:
        await later.dead_letter(dataclasses.replace(earlier, error="KeyError: 'name'", body=b"{}"))
        assert sorted(letter.error for letter in await list_dead_letters(later)) == ["KeyError: 'name'", "KeyError: 'sku'"]
    finally:
        await later.close()


async def test_a_message_its_consumer_died_on_every_time_is_a_dead_letter_that_listing_never_uses_up(rabbit) -> None:
    """The broker moves a message past its queue's delivery limit to the dead letters itself (a
    consumer that crashed on every delivery). Listing takes each letter and stores a copy: handing
    it back would count a delivery, and from RabbitMQ 4.0 a quorum queue drops a message returned
    more than 20 times, so the 21st listing would have lost every letter."""
    stored = DeadLetter(consumer="watcher", origin=f"{rabbit.city}.things.ThingMade", error="KeyError: 'sku'",
                        deliveries=8, dead_lettered_at="2026-11-24T10:00:00Z", body=b'{"not": "known"}')
    await rabbit.dead_letter(stored)
    queue = await rabbit.settle_consumer("watcher", [THING_MADE], max_deliveries=0)  # the broker's limit: 3
    event = Envelope.new("things", "ThingMade", {"thing_id": "t", "amount": 4}, subject="t")
    await rabbit.publish(event.to_json(), THING_MADE, msg_id=event.id, headers={})
    while (delivery := await queue.get(no_ack=False, fail=False)) is not None:  # taken, never settled
        await delivery.nack(requeue=True)
    await letters_reach(rabbit, 2)

    for _ in range(25):
        letters = {letter.consumer + letter.error: letter for letter in await list_dead_letters(rabbit)}
        assert len(letters) == 2
    moved = letters["watcherdelivery limit reached without an outcome"]
    assert moved.body == event.to_json() and moved.event_type == THING_MADE
    assert moved.origin == f"{rabbit.city}.things.ThingMade"
    assert letters["watcherKeyError: 'sku'"] == stored
    dead_letters = await rabbit.channel.get_queue(rabbit.dlq_name)
    held = [letter async for letter in _every_message(dead_letters)]
    assert [int((letter.headers or {}).get("x-delivery-count", 0)) for letter in held] == [0, 0]
    for letter in held:
        await letter.reject(requeue=True)

    await rabbit.replay(moved)
    replayed = await eventually_get(queue)
    assert replayed.body == event.to_json()
    await replayed.ack()
    assert [letter.error for letter in await list_dead_letters(rabbit)] == ["KeyError: 'sku'"]


async def _every_message(queue):  # type: ignore[no-untyped-def]
    while (message := await queue.get(no_ack=False, fail=False)) is not None:
        yield message


async def eventually_get(queue):  # type: ignore[no-untyped-def]
    for _ in range(100):
        if (message := await queue.get(no_ack=False, fail=False)) is not None:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing reached {queue.name}")
