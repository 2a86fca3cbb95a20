"""Choosing and naming the broker from settings; dead letters survive any body."""

from __future__ import annotations

import asyncio

import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from chassis.messaging import DeadLetter, Delivery, NatsBus, Retention, connect_bus
from chassis.settings import ServiceSettings
from tests.chassis.messaging.support import connect_when_up, eventually
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


async def _deliveries_of_every_type(bus: NatsBus, existing_filter: str | None = None) -> list[str]:
    """Subscribes `watcher` to ThingMade and ThingKept (after creating it the old way, filtered
    on `existing_filter`, if given), publishes three types, and answers what it received."""
    stream = await bus.ensure_stream("things")
    if existing_filter is not None:
        await bus.jetstream.add_consumer(stream, ConsumerConfig(
            durable_name="watcher", ack_policy=AckPolicy.EXPLICIT, filter_subject=existing_filter))
    received: list[str] = []

    async def record(delivery: Delivery) -> None:
        received.append(delivery.origin.rsplit(".", 1)[-1])
        await delivery.ack()

    async def kept_arrived() -> bool:
        return "ThingKept" in received

    subscription = await bus.subscribe(
        "watcher", ["agora.things.ThingMade.v1", "agora.things.ThingKept.v2"], record, concurrency=4
    )
    try:
        for name in ("ThingMade", "ThingLost", "ThingKept"):
            await bus.publish(b"{}", f"agora.things.{name}.v1", msg_id=name, headers={})
        await eventually(kept_arrived, timeout=5)
        await asyncio.sleep(0.2)  # anything else would have arrived by now
    finally:
        await subscription.stop()
    return received


async def test_on_nats_2_10_a_consumer_receives_only_the_types_it_handles(own_nats, city: str) -> None:
    """Several filter subjects; a durable consumer made before, on the whole stream, is narrowed."""
    bus = NatsBus(own_nats.url, city, pull_expires_seconds=1)
    await connect_when_up(bus)
    try:
        assert bus._nc is not None and bus._nc.connected_server_version.minor >= 10
        assert await _deliveries_of_every_type(bus, existing_filter=f"{city}.things.>") == ["ThingMade", "ThingKept"]
        info = await bus.jetstream.consumer_info(f"{city}_THINGS".upper(), "watcher")
        assert info.config.filter_subjects == [f"{city}.things.ThingKept", f"{city}.things.ThingMade"]
    finally:
        await bus.delete_streams()
        await bus.close()


async def test_on_nats_2_9_a_consumer_follows_its_producers_whole_stream(bus: NatsBus) -> None:
    """One filter subject only: the other types are delivered too (the Consumer acks them unread)."""
    assert bus._nc is not None
    if bus._nc.connected_server_version.minor >= 10:
        pytest.skip("the test NATS server takes several filter subjects")
    assert await _deliveries_of_every_type(bus) == ["ThingMade", "ThingLost", "ThingKept"]


async def test_a_service_keeps_an_existing_streams_settings_and_the_operator_changes_them(city: str) -> None:
    """`ensure_stream` creates a missing stream but leaves an existing one as it is: its settings
    are the operator's (`settle_stream`, at `agora up`), as they could erase history."""
    operator = NatsBus(NATS_URL, city, retention=Retention(max_age_seconds=3600))
    service = NatsBus(NATS_URL, city, retention=Retention(max_age_seconds=600))
    await operator.connect()
    await service.connect()
    try:
        stream = await service.ensure_stream("things")
        assert (await service.jetstream.stream_info(stream)).config.max_age == 600
        await operator.settle_stream("things")
        assert (await service.jetstream.stream_info(stream)).config.max_age == 3600

        await service.publish(b"{}", "agora.things.ThingMade.v1", msg_id="kept", headers={})
        restarted = NatsBus(NATS_URL, city, retention=Retention(max_age_seconds=600))
        await restarted.connect()
        try:
            assert await restarted.ensure_stream("things") == stream
            info = await restarted.jetstream.stream_info(stream)
            assert info.config.max_age == 3600 and info.state.messages == 1
        finally:
            await restarted.close()
        await operator.settle_stream("things")  # the same settings again: nothing to change
    finally:
        await operator.delete_streams()
        await operator.close()
        await service.close()


async def test_a_service_uses_the_consumer_the_operator_made_without_asking_to_change_it(
    city: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the embedded NATS a service may not create or change a consumer: `agora up` made it."""
    operator, service = NatsBus(NATS_URL, city), NatsBus(NATS_URL, city, pull_expires_seconds=1)
    await operator.connect()
    await service.connect()
    types = ["agora.things.ThingMade.v1", "agora.things.ThingKept.v2"]
    try:
        await operator.settle_consumer("watcher", types)

        async def refused(*_: object, **__: object) -> None:
            raise AssertionError("the service asked to create or change its consumer")

        monkeypatch.setattr(service.jetstream, "add_consumer", refused)
        received: list[str] = []

        async def record(delivery: Delivery) -> None:
            received.append(delivery.origin)
            await delivery.ack()

        subscription = await service.subscribe("watcher", types, record, concurrency=4)
        try:
            await service.publish(b"{}", "agora.things.ThingMade.v1", msg_id="made", headers={})
            await eventually(lambda: _arrived(received), timeout=5)
        finally:
            await subscription.stop()
    finally:
        await operator.delete_streams()
        await operator.close()
        await service.close()


async def _arrived(received: list[str]) -> bool:
    return bool(received)
