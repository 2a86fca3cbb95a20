"""A malformed event in a running city lands in the dead-letter stream; `agora dlq` shows and replays it.

Other tests of the session dead-letter messages too (test_malformed_events.py), so this one looks
only at the letters of its own message and replays only them."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest

from chassis.messaging import DeadLetter, NatsBus
from tests.e2e.conftest import City

pytestmark = pytest.mark.e2e


async def test_a_poison_message_is_dead_lettered_listed_and_replayable(city: City) -> None:
    nats_url = city.nats_url()
    city_id = city.env.get("AGORA_CITY", "agora")
    marker = uuid.uuid4().hex
    poison = f'{{"poison": "{marker}"'.encode()
    connection = await nats.connect(nats_url)
    try:
        await connection.jetstream().publish(f"{city_id}.orders.OrderPlaced", poison, headers={"Nats-Msg-Id": marker})
    finally:
        await connection.close()

    bus = NatsBus(nats_url, city_id)
    await bus.connect()
    try:
        async def own_letters() -> dict[str, DeadLetter]:
            return {letter.consumer: letter for letter in await bus.dead_letters() if letter.body == poison}

        letters: dict[str, DeadLetter] = {}
        for _ in range(100):
            letters = await own_letters()
            if {"inventory", "payments", "cart"} <= letters.keys():
                break
            await asyncio.sleep(0.2)
        assert {"inventory", "payments", "cart"} <= letters.keys(), letters
        assert all(letter.error.startswith("malformed: not JSON") for letter in letters.values())
        listing = city.agora("dlq", "list", "--consumer", "inventory").stdout
        assert letters["inventory"].ref in listing and "malformed" in listing, listing
        assert letters["inventory"].dead_lettered_at in listing, listing  # piped, nothing is cut short

        replayed = city.agora("dlq", "replay", letters["inventory"].ref)
        assert f"replayed {letters['inventory'].ref}" in replayed.stdout
        unknown = city.agora("dlq", "replay", "no-such-ref", check=False)
        assert (unknown.returncode, unknown.stderr.strip()) == (1, "error: no dead letter 'no-such-ref'")
        again = None
        for _ in range(100):  # still poison: it comes straight back, under a new ref
            again = (await own_letters()).get("inventory")
            if again is not None and again.ref != letters["inventory"].ref:
                break
            await asyncio.sleep(0.2)
        assert again is not None and again.ref != letters["inventory"].ref and again.origin == letters["inventory"].origin
    finally:
        await bus.close()
    assert city.status()["services"] and all(s["healthy"] for s in city.status()["services"])
