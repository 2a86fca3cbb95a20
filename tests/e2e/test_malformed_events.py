"""Malformed events, generated with Hypothesis, sent into every consumer of a running city: each
lands in the dead letters of every consumer that handles the type it is published as, with its
error, at once (the other followers of its stream ack it unread, or never receive it); no consumer
restarts or stays stuck redelivering; and the city still turns a real event into its effect afterwards.

The (consumer, event type) pairs come from the services' subscription tables (tests/e2e/malformed.py),
so a new subscription is fuzzed as soon as it exists."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict

import aiohttp
import nats
import pytest
from nats.js import JetStreamContext

from chassis.messaging import DeadLetter, NatsBus
from chassis.messaging.nats_bus import DLQ, stream_name
from tests.e2e import malformed
from tests.e2e.conftest import City

pytestmark = pytest.mark.e2e

PER_PAIR = 12  # generated messages per (consumer, event type); the edge cases come once per event type


def instances(city: City) -> dict[tuple[str, str], tuple[int | None, int, bool]]:
    """Each service instance's pid, restart count (the supervisor's state file) and health."""
    state = json.loads((city.home / "city.json").read_text())
    healthy = {(entry["name"], entry["http"]): entry["healthy"] for entry in city.status()["services"]}
    return {(entry["name"], entry["http"]): (entry["pid"], entry["restarts"], healthy[entry["name"], entry["http"]])
            for entry in state["services"]}


async def pending(js: JetStreamContext, city_id: str, followed: dict[str, set[str]]) -> dict[str, int]:
    """Per durable consumer: messages not yet delivered plus delivered and not acked."""
    counts = {}
    for producer, consumers in followed.items():
        for consumer in consumers:
            info = await js.consumer_info(stream_name(city_id, producer), consumer)
            counts[f"{consumer}@{producer}"] = info.num_pending + info.num_ack_pending
    return counts


async def test_malformed_events_into_every_consumer_are_dead_lettered_with_their_error(city: City) -> None:
    running = {entry["name"] for entry in city.status()["services"]}
    pairs = [(consumer, event_type) for consumer, event_type in malformed.pairs() if consumer in running]
    assert pairs, "no consumer runs in this city"
    followed = {producer: malformed.followers(producer) & running
                for producer in {malformed.producer(event_type) for _, event_type in pairs}}
    before = instances(city)
    assert all(healthy for _, _, healthy in before.values()), before
    nats_url = city.nats_url()
    city_id = city.env.get("AGORA_CITY", "agora")

    messages: list[tuple[str, malformed.Malformed]] = []  # (event type whose subject it goes to, message)
    for consumer, event_type in pairs:
        generated = malformed.generate(malformed.malformed_events(event_type), PER_PAIR, key=f"{consumer} {event_type}")
        messages += [(event_type, message) for message in generated]
    messages += [(event_type, message) for event_type in sorted({event_type for _, event_type in pairs})
                 for message in malformed.edge_cases(event_type)]

    started = time.monotonic()
    bus = NatsBus(nats_url, city_id)
    await bus.connect()
    connection = await nats.connect(nats_url)
    js = connection.jetstream()
    sent: dict[str, tuple[str, str, malformed.Malformed]] = {}  # message ref (stream:sequence) → (type, subject, message)
    letters: dict[str, list[DeadLetter]] = {}
    try:
        for event_type, message in messages:
            subject = bus.subject(event_type)
            ack = await js.publish(subject, message.body, headers={"Nats-Msg-Id": str(uuid.uuid4()), "Ce-Type": event_type})
            sent[f"{ack.stream}:{ack.seq}"] = (event_type, subject, message)

        expected = {(consumer, ref) for ref, (event_type, _, _) in sent.items()
                    for consumer in set(malformed.subscriptions()[event_type]) & running}
        deadline = time.monotonic() + 45
        found: set[tuple[str, str]] = set()
        while True:  # every consumer has answered every message, and each answer is a dead letter
            stuck = {name: count for name, count in (await pending(js, city_id, followed)).items() if count}
            if not stuck:
                letters = {consumer: [letter for letter in await bus.dead_letters(consumer) if letter.message_ref in sent]
                           for consumer in set().union(*followed.values())}
                found = {(consumer, letter.message_ref) for consumer, mine in letters.items() for letter in mine}
                if expected <= found:
                    break
            assert time.monotonic() < deadline, f"still pending: {stuck}; dead letters missing: {len(expected - found)}"
            await asyncio.sleep(0.2)
        assert found == expected, f"dead-lettered by consumers that do not handle the type: {sorted(found - expected)[:5]}"
        elapsed = time.monotonic() - started

        for consumer, mine in letters.items():
            assert len({letter.message_ref for letter in mine}) == len(mine), f"{consumer}: a message dead-lettered twice"
            for letter in mine:
                _, subject, message = sent[letter.message_ref]
                context = f"{consumer}, {message.kind}: {letter.error}"
                assert letter.consumer == consumer and letter.origin == subject, context
                assert letter.body == message.body, context
                assert letter.deliveries == 1, context  # at once: retrying a malformed message cannot help
                assert letter.error.startswith("malformed: ") and len(letter.error) > len("malformed: "), context
                assert "unreadable" not in letter.error, context  # each fault has its own reason, not the fallback
        per_consumer = {consumer: len(mine) for consumer, mine in letters.items()}
        print(f"\n{len(sent)} malformed messages, {len(expected)} dead letters in {elapsed:.1f} s: {per_consumer}")

        assert instances(city) == before, "a service instance restarted or was replaced"
        assert await pending(js, city_id, followed) == dict.fromkeys(await pending(js, city_id, followed), 0)
    finally:
        for mine in letters.values():  # leave the dead letters as the other tests expect to find them
            for letter in mine:
                await js.delete_msg(stream_name(city_id, DLQ), int(letter.ref))
        await connection.close()
        await bus.close()

    await a_real_event_still_takes_effect(city)


async def a_real_event_still_takes_effect(city: City) -> None:
    """UserRegistered reaches notifications, whose streams were just fuzzed: a welcome email."""
    email = f"after-fuzz-{uuid.uuid4().hex[:12]}@agora.test"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{city.base_url}/api/v1/auth/register",
                             json={"email": email, "password": "correct horse battery", "name": "After Fuzz"}) as answer:
            assert answer.status == 201, await answer.text()
    deadline = time.monotonic() + 30
    while not any(email.encode() in path.read_bytes() for path in (city.home / "mail").glob("*.eml")):
        assert time.monotonic() < deadline, f"no welcome email to {email}"
        await asyncio.sleep(0.3)


def test_every_subscription_is_fuzzed() -> None:
    """The pairs are the subscription tables, not a list kept here: one per consumer and type."""
    by_consumer: dict[str, set[str]] = defaultdict(set)
    for consumer, event_type in malformed.pairs():
        by_consumer[consumer].add(event_type)
    assert by_consumer["cart"] == {"agora.orders.OrderPlaced.v1"}
    assert {"agora.orders.OrderPlaced.v1", "agora.orders.OrderConfirmed.v1"} <= by_consumer["payments"]
    assert all(malformed.schema(event_type) for types in by_consumer.values() for event_type in types)
