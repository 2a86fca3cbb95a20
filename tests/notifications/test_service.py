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
from tests.support import running_service


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
    try:
        await build(app)
        async with running_service(app):
            yield City(bus)
    finally:
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
