"""The consumer's own rules: order per aggregate under concurrency, and no silent give-up."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field

import asyncpg

from chassis.messaging import Consumer, DeadLetter, Envelope, PermanentFailure, PostgresInbox
from chassis.messaging.bus import MAX_DELIVERIES
from tests.chassis.messaging.support import THING_MADE, eventually


async def test_events_about_one_aggregate_are_handled_in_order_while_others_run_alongside(pool, bus) -> None:
    handled: list[tuple[str, int]] = []
    running = 0
    most_at_once = 0

    async def make(event: Envelope, conn: asyncpg.Connection) -> None:
        nonlocal running, most_at_once
        running += 1
        most_at_once = max(most_at_once, running)
        await asyncio.sleep(random.uniform(0, 0.01))
        handled.append((event.subject or "", event.data["amount"]))
        running -= 1

    async def all_handled() -> bool:
        return len(handled) == 90

    async with Consumer("watcher", bus, PostgresInbox(pool), {THING_MADE: make}, concurrency=8):
        for n in range(30):
            for thing in ("a", "b", "c"):
                event = Envelope.new("things", "ThingMade", {"thing_id": thing, "amount": n}, subject=thing)
                await bus.publish(event.to_json(), THING_MADE, msg_id=event.id, headers={})
        await eventually(all_handled)
    for thing in ("a", "b", "c"):
        assert [n for subject, n in handled if subject == thing] == list(range(30))
    assert most_at_once > 1


@dataclass
class RecordingBus:
    city: str = "test"
    letters: list[DeadLetter] = field(default_factory=list)

    async def dead_letter(self, letter: DeadLetter) -> None:
        self.letters.append(letter)


@dataclass
class FakeDelivery:
    body: bytes
    deliveries: int
    headers: dict[str, str] = field(default_factory=dict)
    origin: str = "test.things.ThingMade"
    ref: str = "TEST_THINGS:7"
    outcome: str = ""

    async def ack(self) -> None:
        self.outcome = "ack"

    async def nak(self, delay_seconds: float) -> None:
        self.outcome = f"nak {delay_seconds}"


class UnusedInbox:
    async def apply_once(self, consumer, event_id, apply) -> bool:  # type: ignore[no-untyped-def]
        raise AssertionError("the handler must not run again")


async def never_called(event: Envelope, tx: object) -> None:
    raise AssertionError("the handler must not run again")


async def test_a_delivery_past_the_last_attempt_is_dead_lettered_without_running_the_handler() -> None:
    """The last attempt died with its process (no nak, no letter): the broker's next delivery
    must end in dead letters, not in a ninth try or a silent drop."""
    bus = RecordingBus()
    consumer = Consumer("watcher", bus, UnusedInbox(), {THING_MADE: never_called}, max_deliveries=8)  # type: ignore[arg-type]
    event = Envelope.new("things", "ThingMade", {"thing_id": "t", "amount": 1})
    delivery = FakeDelivery(event.to_json(), deliveries=9)
    await consumer._on_delivery(delivery)
    [letter] = bus.letters
    assert letter.error == "no outcome after 8 deliveries" and letter.event_id == event.id
    assert letter.message_ref == "TEST_THINGS:7" and delivery.outcome == "ack"


class RunningInbox:
    async def apply_once(self, consumer, event_id, apply) -> bool:  # type: ignore[no-untyped-def]
        await apply(None)
        return True


async def test_a_handler_that_says_no_retry_can_help_is_dead_lettered_at_its_first_delivery() -> None:
    attempts = []

    async def refuse(event: Envelope, tx: object) -> None:
        attempts.append(event.id)
        raise PermanentFailure("550 5.1.1 no such mailbox")

    async def stumble(event: Envelope, tx: object) -> None:
        raise ConnectionResetError("try again")

    event = Envelope.new("things", "ThingMade", {"thing_id": "t", "amount": 1})
    bus = RecordingBus()
    refused, stumbled = FakeDelivery(event.to_json(), deliveries=1), FakeDelivery(event.to_json(), deliveries=1)
    await Consumer("watcher", bus, RunningInbox(), {THING_MADE: refuse})._on_delivery(refused)  # type: ignore[arg-type]
    await Consumer("other", bus, RunningInbox(), {THING_MADE: stumble})._on_delivery(stumbled)  # type: ignore[arg-type]

    [letter] = bus.letters
    assert attempts == [event.id] and refused.outcome == "ack"
    assert letter.error == "PermanentFailure: 550 5.1.1 no such mailbox" and letter.deliveries == 1
    assert stumbled.outcome == "nak 0.5"  # any other failure is retried


def test_retries_back_off_exponentially_up_to_a_ceiling() -> None:
    consumer = Consumer(
        "watcher",
        RecordingBus(),
        UnusedInbox(),
        {},
        retry_base_seconds=0.5,  # type: ignore[arg-type]
        retry_max_seconds=10,
    )
    assert [consumer.retry_delay(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]


def test_the_default_retries_start_quickly_and_ride_out_a_ten_minute_outage() -> None:
    """A failing event is dead-lettered only after its retries span more than ten minutes, so an
    outage of a service's database that long needs no operator to replay what it failed."""
    consumer = Consumer("watcher", RecordingBus(), UnusedInbox(), {})  # type: ignore[arg-type]
    waits = [consumer.retry_delay(n) for n in range(1, MAX_DELIVERIES)]
    assert waits[:3] == [0.5, 1, 2]
    assert sum(waits) > 600


async def test_a_type_declared_in_the_header_that_is_not_handled_is_acked_unread() -> None:
    """Other events of a followed producer cost no parsing or validation: the header decides."""
    bus = RecordingBus()
    consumer = Consumer("watcher", bus, UnusedInbox(), {THING_MADE: never_called})  # type: ignore[arg-type]
    delivery = FakeDelivery(b"{not json", deliveries=1, headers={"Ce-Type": "agora.things.ThingLost.v1"})
    await consumer._on_delivery(delivery)
    assert delivery.outcome == "ack" and bus.letters == []


async def test_a_malformed_message_declared_as_a_handled_type_is_dead_lettered() -> None:
    bus = RecordingBus()
    consumer = Consumer("watcher", bus, UnusedInbox(), {THING_MADE: never_called})  # type: ignore[arg-type]
    bad_data = Envelope.new("things", "ThingMade", {"thing_id": "t", "amount": 1}).to_dict()
    bad_data["data"]["amount"] = -1
    for body in (b"{not json", json.dumps(bad_data).encode()):
        delivery = FakeDelivery(body, deliveries=1, headers={"Ce-Type": THING_MADE})
        await consumer._on_delivery(delivery)
        assert delivery.outcome == "ack"
    [not_json, refused] = bus.letters
    assert not_json.error.startswith("malformed: not JSON")
    assert refused.error.startswith(f"malformed: {THING_MADE} data at amount")


async def test_without_a_type_header_the_body_decides_whether_the_type_is_handled() -> None:
    bus = RecordingBus()
    consumer = Consumer("watcher", bus, UnusedInbox(), {"agora.things.ThingLost.v1": never_called})  # type: ignore[arg-type]
    event = Envelope.new("things", "ThingMade", {"thing_id": "t", "amount": 1})
    delivery = FakeDelivery(event.to_json(), deliveries=1)
    await consumer._on_delivery(delivery)
    assert delivery.outcome == "ack" and bus.letters == []
    unreadable = FakeDelivery(b"{not json", deliveries=1)
    await consumer._on_delivery(unreadable)
    [letter] = bus.letters
    assert letter.error.startswith("malformed: not JSON")


async def test_a_replayed_letter_is_handled_only_by_the_consumer_it_was_for() -> None:
    """The others acked the event when it first came; were it theirs again, an event that still
    fails would come back from each of them as a letter of its own, more at every replay."""
    handled: list[str] = []

    async def record(event: Envelope, tx: object) -> None:
        handled.append(event.id)

    event = Envelope.new("things", "ThingMade", {"thing_id": "t", "amount": 1})
    replayed = {"Ce-Type": THING_MADE, "Agora-Replayed-For": "watcher"}
    for name in ("watcher", "other"):
        delivery = FakeDelivery(event.to_json(), deliveries=1, headers=dict(replayed))
        await Consumer(name, RecordingBus(), RunningInbox(), {THING_MADE: record})._on_delivery(delivery)  # type: ignore[arg-type]
        assert delivery.outcome == "ack"

    assert handled == [event.id]


async def hang(event: Envelope, tx: object) -> None:
    await asyncio.Event().wait()


async def test_a_handler_that_hangs_is_cut_off_and_retried_then_dead_lettered() -> None:
    """Else it would hold its place for good, and each redelivery after ack_wait another one."""
    bus = RecordingBus()
    consumer = Consumer("watcher", bus, RunningInbox(), {THING_MADE: hang}, handler_timeout_seconds=0.05, max_deliveries=2)  # type: ignore[arg-type]
    event = Envelope.new("things", "ThingMade", {"thing_id": "t", "amount": 1})

    first, last = FakeDelivery(event.to_json(), deliveries=1), FakeDelivery(event.to_json(), deliveries=2)
    await asyncio.wait_for(consumer._on_delivery(first), 5)
    await asyncio.wait_for(consumer._on_delivery(last), 5)

    assert first.outcome == "nak 0.5" and last.outcome == "ack"
    [letter] = bus.letters
    assert letter.error == "TimeoutError: the handler ran longer than 0.05 s"


async def test_a_delivery_past_the_last_attempt_does_not_wait_behind_its_subjects_other_events() -> None:
    bus = RecordingBus()
    consumer = Consumer("watcher", bus, RunningInbox(), {THING_MADE: hang}, max_deliveries=8)  # type: ignore[arg-type]
    hung = Envelope.new("things", "ThingMade", {"thing_id": "t", "amount": 1}, subject="t")
    exhausted = Envelope.new("things", "ThingMade", {"thing_id": "t", "amount": 2}, subject="t")
    holding = asyncio.create_task(consumer._on_delivery(FakeDelivery(hung.to_json(), deliveries=1)))
    await asyncio.sleep(0.01)

    delivery = FakeDelivery(exhausted.to_json(), deliveries=9)
    await asyncio.wait_for(consumer._on_delivery(delivery), 5)

    assert delivery.outcome == "ack" and [letter.event_id for letter in bus.letters] == [exhausted.id]
    holding.cancel()
    await asyncio.gather(holding, return_exceptions=True)


async def test_a_timeout_inside_the_handler_keeps_its_own_words() -> None:
    async def mail_server_slow(event: Envelope, tx: object) -> None:
        raise TimeoutError("the mail server did not answer in 10 s")

    bus = RecordingBus()
    consumer = Consumer("watcher", bus, RunningInbox(), {THING_MADE: mail_server_slow}, max_deliveries=1)  # type: ignore[arg-type]
    await consumer._on_delivery(FakeDelivery(Envelope.new("things", "ThingMade", {"thing_id": "t", "amount": 1}).to_json(), deliveries=1))

    [letter] = bus.letters
    assert letter.error == "TimeoutError: the mail server did not answer in 10 s"
