"""A customer's cancel racing the carrier's dispatch, with the real orders and the real shipping
services talking gRPC and NATS, each on its own database: every order ends shipped with its
parcel dispatched, or cancelled with its parcel cancelled (or never booked), never a mix."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import pytest

from chassis.runtime import ServiceApp
from shipping.bootstrap import ShippingSettings
from shipping.bootstrap import build as build_shipping
from tests.conftest import NATS_URL, unique_city
from tests.orders.conftest import Orders, confirm, orders_service, throwaway_database
from tests.support import Tokens, free_port, running_service

DISPATCH_DELAY = 0.5
ORDERS = 16


@contextlib.asynccontextmanager
async def shipping_service(dsn: str, home: Path, *, city: str, tokens: Tokens) -> AsyncIterator[str]:
    """The real shipping service, accepting orders as its caller; its gRPC address."""
    settings = ShippingSettings(
        service="shipping",
        city=city,
        home=home,
        grpc_port=free_port(),
        http_port=free_port(),
        dsn=dsn,
        nats_url=NATS_URL,
        mtls="off",
        allowed_callers=frozenset({"orders"}),
        dispatch_delay_seconds=DISPATCH_DELAY,
    )
    app = ServiceApp(settings)
    await build_shipping(app, verifier=tokens.verifier())
    async with running_service(app):
        yield f"127.0.0.1:{settings.grpc_port}"


@dataclass
class Fulfilment:
    orders: Orders
    shipments: asyncpg.Pool


@pytest.fixture
async def fulfilment(fresh_database: str, tmp_path: Path) -> AsyncIterator[Fulfilment]:
    city, tokens = unique_city(), Tokens()
    async with throwaway_database() as shipping_dsn:
        async with shipping_service(shipping_dsn, tmp_path / "shipping", city=city, tokens=tokens) as address:
            async with orders_service(
                fresh_database, tmp_path / "orders", city=city, tokens=tokens, shipping=address
            ) as orders:
                shipments = await asyncpg.create_pool(shipping_dsn, min_size=1, max_size=2)
                try:
                    yield Fulfilment(orders, shipments)
                finally:
                    await shipments.close()


async def cancel_as_a_customer(orders: Orders, user: str, order_id: str) -> str:
    """'cancelled', or 'refused' (already shipped); a 503 is retried as a client would."""
    for _ in range(5):
        try:
            return (await orders.cancel(user, order_id)).status.lower()
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.FAILED_PRECONDITION:
                return "refused"
            if error.code() is not grpc.StatusCode.UNAVAILABLE:
                raise
        await asyncio.sleep(0.2)
    raise AssertionError(f"shipping never answered the cancel of {order_id}")


async def test_cancel_and_dispatch_racing_end_each_order_one_way_only(fulfilment: Fulfilment) -> None:
    orders = fulfilment.orders
    cup = orders.shop.add_product("Espresso cup", 1250)

    async def confirm_then_cancel(n: int) -> tuple[str, str]:
        user = f"shopper-{n}"
        orders.shop.carts[user] = [(cup, 1)]
        order = await orders.place(user)
        await confirm(orders.pool, order.order_id)
        if n % 2:
            # The sharpest moment: the parcel has just left, orders has not heard it yet.
            await dispatched(fulfilment.shipments, order.order_id)
        else:
            # Anywhere from before shipping hears of the order to after its parcel left.
            await asyncio.sleep(random.uniform(0, 2 * DISPATCH_DELAY))
        return order.order_id, await cancel_as_a_customer(orders, user, order.order_id)

    async with asyncio.timeout(30):
        answers = dict(await asyncio.gather(*(confirm_then_cancel(n) for n in range(ORDERS))))

    async with asyncio.timeout(30):
        while not await settled(fulfilment, answers):  # noqa: ASYNC110 (polling two databases)
            await asyncio.sleep(0.1)
    for order_id, answer in answers.items():
        status = await orders.pool.fetchval("SELECT status FROM orders WHERE id = $1::uuid", order_id)
        shipment = await fulfilment.shipments.fetchrow("SELECT * FROM shipments WHERE order_id = $1", order_id)
        consignment = await fulfilment.shipments.fetchval(
            "SELECT status_code FROM carrier_consignments WHERE customer_ref = $1", order_id.upper()
        )
        events = await orders.pool.fetch(
            "SELECT split_part(event_type, '.', 3) AS name FROM outbox WHERE envelope::jsonb->>'subject' = $1",
            order_id,
        )
        raised = {row["name"] for row in events} & {"OrderCancelled", "OrderShipped"}
        if answer == "cancelled":
            assert (status, shipment["status"], raised) == ("CANCELLED", "cancelled", {"OrderCancelled"})
            assert consignment in (None, "CX")
        else:
            assert (status, shipment["status"], raised) == ("SHIPPED", "dispatched", {"OrderShipped"})
            assert consignment == "DP"
    # Both sides won some races: the test really raced them.
    assert set(answers.values()) == {"cancelled", "refused"}


async def dispatched(shipments: asyncpg.Pool, order_id: str) -> None:
    while await shipments.fetchval("SELECT status FROM shipments WHERE order_id = $1", order_id) != "dispatched":  # noqa: ASYNC110
        await asyncio.sleep(0.005)


async def settled(fulfilment: Fulfilment, answers: dict[str, str]) -> bool:
    """Every order shipped or cancelled, and shipping holds nothing still waiting to leave."""
    unsettled = await fulfilment.orders.pool.fetchval(
        "SELECT count(*) FROM orders WHERE status NOT IN ('SHIPPED', 'CANCELLED')"
    )
    shipments = await fulfilment.shipments.fetch("SELECT status FROM shipments")
    return unsettled == 0 and len(shipments) == len(answers) and all(s["status"] != "created" for s in shipments)
