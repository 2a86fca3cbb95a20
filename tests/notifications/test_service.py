"""Notifications as a running service: the real bootstrap and consumer, fed through NATS, sending
to a real SMTP server. The whole journey of one customer, with the broker repeating itself."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chassis.messaging import Envelope, NatsBus
from chassis.runtime import ServiceApp
from notifications.bootstrap import NotificationsSettings, build
from tests.conftest import NATS_URL, unique_city
from tests.notifications.conftest import (
    SmtpServer,
    free_port,
    new_id,
    order_confirmed,
    shipment_dispatched,
    user_registered,
)


class City:
    def __init__(self, bus: NatsBus):
        self.bus = bus

    async def publish(self, event: Envelope, *, msg_id: str | None = None) -> None:
        """`msg_id` other than the event id gets past the broker's deduplication: a true repeat."""
        await self.bus.publish(event.to_json(), event.type, msg_id=msg_id or event.id, headers={})


@pytest.fixture
async def city(fresh_database: str, smtp_server: SmtpServer, tmp_path: Path) -> AsyncIterator[City]:
    name = unique_city()
    settings = NotificationsSettings(
        service="notifications",
        city=name,
        home=tmp_path,
        http_port=free_port(),
        dsn=fresh_database,
        nats_url=NATS_URL,
        smtp_url=smtp_server.url,
    )
    app = ServiceApp(settings)
    bus = NatsBus(NATS_URL, name)
    await bus.connect()
    for producer in ("identity", "orders", "shipping"):
        await bus.ensure_stream(producer)
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        await build(app)
        task = asyncio.create_task(app.run_until_stopped(stop))
        async with asyncio.timeout(10):
            while not app.readiness.accepting:  # noqa: ASYNC110 (the chassis exposes a flag, not an event)
                await asyncio.sleep(0.01)
        yield City(bus)
    finally:
        stop.set()
        if task is not None:
            await task
        await bus.delete_streams()
        await bus.close()


async def test_a_customer_gets_welcome_confirmed_and_shipped_once_each(city: City, smtp_server: SmtpServer) -> None:
    user, order = new_id(), new_id()
    confirmed = order_confirmed(order, user)
    await city.publish(confirmed)  # before the registration: retried until the address is known
    await city.publish(user_registered(user, email="ada@example.com"))
    await city.publish(confirmed, msg_id=str(uuid.uuid4()))
    shipped = shipment_dispatched(order, user)
    await city.publish(shipped)
    await city.publish(shipped, msg_id=str(uuid.uuid4()))

    await smtp_server.mailbox.wait_for(3)
    await asyncio.sleep(1.5)  # time for any duplicate to arrive

    assert sorted(message["Subject"] for message in smtp_server.mailbox.to("ada@example.com")) == [
        "Welcome to Agora",
        "Your Agora order has shipped (tracking PF000010429)",
        "Your Agora order is confirmed (44.99 USD)",
    ]
    assert len(smtp_server.mailbox.messages) == 3
