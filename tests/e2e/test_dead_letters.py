"""A malformed event in a running city lands in the dead-letter stream; `agora dlq` shows and replays it."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest

from tests.e2e.conftest import City

pytestmark = pytest.mark.e2e


async def test_a_poison_message_is_dead_lettered_listed_and_replayable(city: City) -> None:
    status = city.status()
    nats_url = next(entry["url"] for entry in status["infra"] if entry["name"] == "nats")
    city_id = city.env.get("AGORA_CITY", "agora")
    connection = await nats.connect(nats_url)
    try:
        marker = uuid.uuid4().hex
        await connection.jetstream().publish(
            f"{city_id}.orders.OrderPlaced", f'{{"poison": "{marker}"'.encode(),
            headers={"Nats-Msg-Id": marker},
        )
    finally:
        await connection.close()

    listing = ""
    for _ in range(100):
        listing = city.agora("dlq", "list").stdout
        if "inventory" in listing and "payments" in listing and "cart" in listing:
            break
        await asyncio.sleep(0.2)
    assert "inventory" in listing and "payments" in listing and "cart" in listing, listing
    assert "malformed" in listing

    replayed = city.agora("dlq", "replay", "--consumer", "inventory")
    assert "replayed 1 dead letter" in replayed.stdout
    for _ in range(100):  # still poison: it comes straight back, and nothing else was touched
        if "inventory" in city.agora("dlq", "list", "--consumer", "inventory").stdout:
            break
        await asyncio.sleep(0.2)
    assert city.status()["services"] and all(s["healthy"] for s in city.status()["services"])
