"""Orders wired as it runs: answers arrive over NATS, decisions leave through the outbox relay."""

from __future__ import annotations

import asyncio
from typing import Any

from chassis import messaging
from chassis.messaging import NatsBus
from tests.conftest import NATS_URL
from tests.orders.conftest import Orders


async def publish(city: str, producer: str, name: str, data: dict[str, Any]) -> None:
    """Publishes an event as another service's relay would."""
    event = messaging.Envelope.new(producer, name, data, subject=data["order_id"])
    bus = NatsBus(NATS_URL, city)
    await bus.connect()
    try:
        await bus.publish(event.to_json(), event.type, msg_id=event.id, headers={})
    finally:
        await bus.close()


async def eventually(check, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_answers_over_the_bus_confirm_the_order_and_the_relay_publishes_it(orders: Orders):
    cup = orders.shop.add_product("Espresso cup", 1250)
    orders.shop.carts["ada"] = [(cup, 2)]
    order = await orders.place("ada")
    amount = {"amount": 2500, "currency": "USD"}

    await publish(orders.city, "payments", "PaymentAuthorized", {"order_id": order.order_id, "amount": amount})
    await publish(
        orders.city,
        "inventory",
        "StockReserved",
        {"order_id": order.order_id, "lines": [{"product_id": cup, "quantity": 2}]},
    )

    async def confirmed_and_relayed() -> bool:
        status = (await orders.get("ada", order.order_id)).status
        relayed = await orders.pool.fetchval(
            "SELECT published_at IS NOT NULL FROM outbox WHERE event_type = 'agora.orders.OrderConfirmed.v1'"
        )
        return status == "CONFIRMED" and bool(relayed)

    await eventually(confirmed_and_relayed)
    assert (
        await orders.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE event_type = 'agora.orders.OrderPlaced.v1' AND published_at IS NOT NULL"
        )
        == 1
    )
