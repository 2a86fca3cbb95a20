"""Orders as it runs: its real bootstrap and gRPC server on a throwaway database, a small real
gRPC double of cart, catalog and shipping at the process boundary (or the real shipping), and
user tokens signed by a test key."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import jwt
import pytest
from agora.cart.v1 import cart_pb2, cart_pb2_grpc
from agora.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from agora.common.v1 import common_pb2
from agora.orders.v1 import orders_pb2, orders_pb2_grpc
from agora.shipping.v1 import shipping_pb2, shipping_pb2_grpc

from chassis import db, messaging
from chassis.grpc import CALLER_METADATA
from chassis.messaging import NatsBus
from chassis.runtime import ServiceApp
from orders import handlers
from orders.bootstrap import MIGRATIONS, OrdersSettings, build
from tests.conftest import ADMIN_DSN, NATS_URL, unique_city
from tests.support import Tokens, free_port, running_service


def _user_of(context: grpc.aio.ServicerContext) -> str:
    metadata = dict(context.invocation_metadata() or ())
    token = metadata["authorization"].removeprefix("Bearer ")
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


@dataclass
class Shop:
    """What the double of cart, catalog and shipping answers: carts by user, the catalog's prices,
    and the orders whose parcels the carrier has already taken."""

    carts: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    products: dict[str, tuple[str, int]] = field(default_factory=dict)
    # While set and not released, GetCart waits: keeps a PlaceOrder in flight.
    hold_cart: asyncio.Event | None = None
    cart_called: asyncio.Event = field(default_factory=asyncio.Event)
    # Whether each GetCart asked for quantities only (orders prices the lines itself).
    cart_reads: list[bool] = field(default_factory=list)
    available: bool = True
    # The token orders forwards has expired by the time cart checks it.
    cart_refuses_the_token: bool = False
    dispatched: set[str] = field(default_factory=set)
    shipping_available: bool = True
    # (order id, user of the forwarded token) of every CancelShipment shipping was asked.
    shipment_cancels: list[tuple[str, str]] = field(default_factory=list)
    # (order id, user of the forwarded token, lines) of every RemoveOrdered cart was asked.
    ordered_removals: list[tuple[str, str, list[tuple[str, int]]]] = field(default_factory=list)
    removals_available: bool = True
    removed_orders: set[str] = field(default_factory=set)

    def add_product(self, name: str, price: int) -> str:
        product_id = str(uuid.uuid4())
        self.products[product_id] = (name, price)
        return product_id


class _FakeCart(cart_pb2_grpc.CartServiceServicer):
    def __init__(self, shop: Shop):
        self._shop = shop

    async def GetCart(self, request, context):  # type: ignore[no-untyped-def]
        self._shop.cart_called.set()
        self._shop.cart_reads.append(request.quantities_only)
        if self._shop.hold_cart is not None:
            await self._shop.hold_cart.wait()
        if not self._shop.available:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "cart is down")
        if self._shop.cart_refuses_the_token:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid or expired access token")
        lines = self._shop.carts.get(_user_of(context), [])
        # A cart's own prices are stale on purpose: orders must price from the catalog.
        return cart_pb2.Cart(
            items=[
                cart_pb2.CartItem(
                    product_id=product_id,
                    name="stale",
                    quantity=quantity,
                    unit_price=common_pb2.Money(amount=1, currency="USD"),
                )
                for product_id, quantity in lines
            ]
        )


    async def RemoveOrdered(self, request, context):  # type: ignore[no-untyped-def]
        lines = [(line.product_id, line.quantity) for line in request.lines]
        user = _user_of(context)
        self._shop.ordered_removals.append((request.order_id, user, lines))
        if not self._shop.removals_available:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "cart is down")
        if request.order_id not in self._shop.removed_orders:  # once per order, as cart does
            self._shop.removed_orders.add(request.order_id)
            left = dict(self._shop.carts.get(user, []))
            for product_id, quantity in lines:
                left[product_id] = left.get(product_id, 0) - quantity
            self._shop.carts[user] = [(product_id, quantity) for product_id, quantity in left.items() if quantity > 0]
        return cart_pb2.RemoveOrderedResponse()


class _FakeCatalog(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, shop: Shop):
        self._shop = shop

    async def GetProducts(self, request, context):  # type: ignore[no-untyped-def]
        return catalog_pb2.GetProductsResponse(
            products=[
                catalog_pb2.Product(id=product_id, name=name, price=common_pb2.Money(amount=price, currency="USD"))
                for product_id in request.ids
                if product_id in self._shop.products
                for name, price in [self._shop.products[product_id]]
            ]
        )


class _FakeShipping(shipping_pb2_grpc.ShippingServiceServicer):
    def __init__(self, shop: Shop):
        self._shop = shop

    async def CancelShipment(self, request, context):  # type: ignore[no-untyped-def]
        if not self._shop.shipping_available:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "shipping is down")
        self._shop.shipment_cancels.append((request.order_id, _user_of(context)))
        if request.order_id in self._shop.dispatched:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "already shipped")
        return shipping_pb2.Shipment(order_id=request.order_id, status="cancelled")


@contextlib.asynccontextmanager
async def shop_double(shop: Shop) -> AsyncIterator[str]:
    server = grpc.aio.server()
    cart_pb2_grpc.add_CartServiceServicer_to_server(_FakeCart(shop), server)
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(_FakeCatalog(shop), server)
    shipping_pb2_grpc.add_ShippingServiceServicer_to_server(_FakeShipping(shop), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    trailing = dict(error.trailing_metadata() or ())
    return {item["field"]: item["message"] for item in json.loads(trailing["x-field-violations"])}


ADDRESS = orders_pb2.Address(
    name="Ada Lovelace", line1="12 St James's Square", city="London", postal_code="SW1Y 4JH", country="GB"
)


@dataclass
class Orders:
    """A running orders service, its double of cart and catalog, and its database."""

    stub: orders_pb2_grpc.OrdersServiceStub
    pool: asyncpg.Pool
    shop: Shop
    tokens: Tokens
    city: str

    async def call(self, method: str, request: Any, *, user: str | None) -> Any:
        metadata = [(CALLER_METADATA, "gateway")]
        if user is not None:
            metadata.append(("authorization", f"Bearer {self.tokens.sign(user)}"))
        return await getattr(self.stub, method)(request, metadata=metadata, timeout=10)

    async def place(
        self, user: str, key: str = "key-1", *, token: str = "tok_visa", address: orders_pb2.Address = ADDRESS
    ) -> orders_pb2.Order:
        request = orders_pb2.PlaceOrderRequest(idempotency_key=key, shipping_address=address, payment_token=token)
        return await self.call("PlaceOrder", request, user=user)

    async def get(self, user: str, order_id: str) -> orders_pb2.Order:
        return await self.call("GetOrder", orders_pb2.GetOrderRequest(order_id=order_id), user=user)

    async def list(self, user: str, page: int = 0, page_size: int = 0) -> orders_pb2.ListOrdersResponse:
        return await self.call("ListOrders", orders_pb2.ListOrdersRequest(page=page, page_size=page_size), user=user)

    async def cancel(self, user: str, order_id: str) -> orders_pb2.Order:
        return await self.call("CancelOrder", orders_pb2.CancelOrderRequest(order_id=order_id), user=user)

    async def published(self, name: str) -> list[dict[str, Any]]:
        return await published(self.pool, name)


async def published(pool: asyncpg.Pool, name: str) -> list[dict[str, Any]]:
    """The data of every `name` event orders wrote to its outbox, oldest first."""
    rows = await pool.fetch("SELECT envelope FROM outbox WHERE event_type = $1 ORDER BY id", f"agora.orders.{name}.v1")
    return [json.loads(row["envelope"])["data"] for row in rows]


async def confirm(pool: asyncpg.Pool, order_id: str) -> None:
    """Inventory reserves and payments authorizes, handled as orders' consumer handles them."""
    for producer, name, data in (
        ("inventory", "StockReserved", {"order_id": order_id, "lines": [{"product_id": "p-1", "quantity": 1}]}),
        ("payments", "PaymentAuthorized", {"order_id": order_id, "amount": {"amount": 1, "currency": "USD"}}),
    ):
        await deliver(pool, messaging.Envelope.new(producer, name, data, subject=order_id))


async def deliver(pool: asyncpg.Pool, event: messaging.Envelope) -> None:
    """What orders' consumer does with one delivery: claim it in the inbox, handle it, commit."""
    handler = handlers.SUBSCRIPTIONS[event.type]
    outbox = messaging.Outbox("orders")
    await messaging.PostgresInbox(pool).apply_once(
        "orders", event.id, lambda conn: handler(event, conn, outbox=outbox, clock=_utc_now)
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


@contextlib.asynccontextmanager
async def running(settings: OrdersSettings, **overrides: Any) -> AsyncIterator[ServiceApp]:
    app = ServiceApp(settings)
    await build(app, **overrides)
    async with running_service(app):
        yield app


@contextlib.asynccontextmanager
async def orders_service(
    dsn: str,
    home: Path,
    *,
    city: str | None = None,
    tokens: Tokens | None = None,
    shipping: str | None = None,
    grpc_port: int | None = None,
    **overrides: Any,
) -> AsyncIterator[Orders]:
    """`shipping` is the address of a real shipping service (in the same `city`, verifying the
    same `tokens`); without it the double answers for shipping too. `grpc_port` lets a second
    instance take the place of one stopped."""
    city = city or unique_city()
    shop, tokens = Shop(), tokens or Tokens()
    try:
        async with shop_double(shop) as shop_address:
            settings = OrdersSettings(
                service="orders",
                city=city,
                home=home,
                grpc_port=grpc_port or free_port(),
                http_port=free_port(),
                dsn=dsn,
                nats_url=NATS_URL,
                mtls="off",
                allowed_callers=frozenset({"gateway"}),
                peers={
                    "cart": [shop_address],
                    "catalog": [shop_address],
                    "identity": [shop_address],
                    "shipping": [shipping or shop_address],
                },
            )
            async with (
                running(settings, verifier=tokens.verifier(), **overrides),
                grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel,
            ):
                pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
                try:
                    yield Orders(orders_pb2_grpc.OrdersServiceStub(channel), pool, shop, tokens, city)
                finally:
                    await pool.close()
    finally:
        bus = NatsBus(NATS_URL, city)
        await bus.connect()
        await bus.delete_streams()
        await bus.close()


@pytest.fixture
async def orders(fresh_database: str, tmp_path: Path) -> AsyncIterator[Orders]:
    async with orders_service(fresh_database, tmp_path) as service:
        yield service


@contextlib.asynccontextmanager
async def throwaway_database() -> AsyncIterator[str]:
    """Another empty database, for a second service in the same test; dropped afterwards."""
    name = unique_city()
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def store(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    """Orders' migrated database, for driving the handlers directly."""
    pool = await db.connect(fresh_database, min_size=1, max_size=4)
    await db.migrate(pool, MIGRATIONS)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def outbox() -> messaging.Outbox:
    return messaging.Outbox("orders")
