"""Choosing and naming the broker from settings; dead letters survive any body."""

from __future__ import annotations

import pytest

from chassis.messaging import DeadLetter, NatsBus, connect_bus
from chassis.settings import ServiceSettings
from tests.conftest import NATS_URL


async def test_connect_bus_gives_a_connected_nats_bus_for_the_settings_city(city: str) -> None:
    settings = ServiceSettings(service="things", http_port=1, city=city, nats_url=NATS_URL)
    bus = await connect_bus(settings)
    try:
        assert isinstance(bus, NatsBus) and bus.city == city
        await bus.healthy()
        assert bus.subject("agora.things.ThingMade.v2") == f"{city}.things.ThingMade"
    finally:
        await bus.close()
    with pytest.raises(ConnectionError):
        await bus.healthy()


async def test_rabbitmq_without_its_url_is_a_configuration_error() -> None:
    settings = ServiceSettings(service="things", http_port=1, bus="rabbitmq")
    with pytest.raises(RuntimeError, match="AGORA_RABBITMQ_URL"):
        await connect_bus(settings)


@pytest.mark.parametrize("body", [b'{"specversion": "1.0"}', b"\xff\x00 not text"])
def test_a_dead_letter_keeps_its_body_byte_for_byte(body: bytes) -> None:
    letter = DeadLetter(
        consumer="watcher",
        origin="c.things.ThingMade",
        error="boom",
        deliveries=8,
        dead_lettered_at="2026-01-01T00:00:00Z",
        body=body,
        message_ref="C_THINGS:3",
        event_id=None,
        event_type="agora.things.ThingMade.v1",
    )
    again = DeadLetter.from_json(letter.to_json(), ref="12")
    assert again == letter and again.ref == "12"
