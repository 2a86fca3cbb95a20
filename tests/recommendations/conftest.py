"""Recommendations against a throwaway Postgres: the handler driven through the real inbox, as the
consumer drives it, and the gRPC API through the real bootstrap, chassis server and NATS."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from agora.recommendations.v1 import recommendations_pb2, recommendations_pb2_grpc

from chassis import db
from chassis.grpc import CALLER_METADATA
from chassis.messaging import Envelope, NatsBus, PostgresInbox
from chassis.runtime import ServiceApp
from recommendations import handlers
from recommendations.bootstrap import MIGRATIONS, RecommendationsSettings, build
from tests.conftest import NATS_URL, unique_city
from tests.support import free_port, running_service

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts" / "events"
ADDRESS = {"name": "Ada", "line1": "1 Main St", "city": "London", "postal_code": "N1", "country": "GB"}


@pytest.fixture(autouse=True)
def event_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    # Run from the repository root, `chassis` resolves as a namespace package without a
    # `__file__`, so the chassis cannot find the schemas by itself: name them explicitly.
    monkeypatch.setenv("AGORA_CONTRACTS_DIR", str(CONTRACTS))


def new_id() -> str:
    return str(uuid.uuid4())


def confirmed(lines: dict[str, int], order_id: str | None = None) -> Envelope:
    """An OrderConfirmed for `lines` (product id → quantity)."""
    order_id = order_id or new_id()
    items = [
        {
            "product_id": product_id,
            "name": "Thing",
            "quantity": quantity,
            "unit_price": {"amount": 100, "currency": "USD"},
        }
        for product_id, quantity in lines.items()
    ]
    total = {"amount": 100 * sum(lines.values()), "currency": "USD"}
    data = {"order_id": order_id, "user_id": "user-1", "items": items, "total": total, "shipping_address": ADDRESS}
    return Envelope.new("orders", "OrderConfirmed", data, subject=order_id)


def cancelled(lines: dict[str, int], order_id: str, reason: str = "customer_request") -> Envelope:
    """The OrderCancelled of the order `confirmed(lines, order_id)` made."""
    data = {**confirmed(lines, order_id).data, "reason": reason}
    del data["shipping_address"]
    return Envelope.new("orders", "OrderCancelled", data, subject=order_id)


def product_created(product_id: str, *categories: str) -> Envelope:
    data = {"product_id": product_id, "sku": f"SKU-{product_id}", "name": product_id.title(), "description": "",
            "price": {"amount": 100, "currency": "USD"}, "categories": list(categories), "image_url": ""}
    return Envelope.new("catalog", "ProductCreated", data, subject=product_id)


class Recommendations:
    """The handler on a real database, fed the way the consumer feeds it."""

    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool
        self.inbox = PostgresInbox(pool)

    async def deliver(self, event: Envelope) -> bool:
        handler = handlers.SUBSCRIPTIONS[event.type]
        return await self.inbox.apply_once("recommendations", event.id, lambda conn: handler(event, conn))

    async def buy(self, *products: str, quantity: int = 1) -> None:
        await self.deliver(confirmed(dict.fromkeys(products, quantity)))

    async def announce(self, product_id: str, *categories: str) -> None:
        await self.deliver(product_created(product_id, *categories))

    async def recommend(self, product_id: str, limit: int = 4) -> list[str]:
        return await handlers.recommend(product_id, limit, pool=self.pool)


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.connect(fresh_database, min_size=1, max_size=8)
    await db.migrate(pool, MIGRATIONS)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def recommendations(pool: asyncpg.Pool) -> Recommendations:
    return Recommendations(pool)


# ---------------------------------------------------------------- the running service


class Service:
    def __init__(self, stub: recommendations_pb2_grpc.RecommendationsServiceStub, bus: NatsBus):
        self.stub = stub
        self.bus = bus

    async def publish(self, event: Envelope) -> None:
        await self.bus.publish(event.to_json(), event.type, msg_id=event.id, headers={})

    async def recommend(self, product_id: str, limit: int = 0) -> list[str]:
        """As the gateway asks: its caller name, no user token."""
        request = recommendations_pb2.RecommendRequest(product_id=product_id, limit=limit)
        answer = await self.stub.Recommend(request, metadata=[(CALLER_METADATA, "gateway")], timeout=10)
        return list(answer.product_ids)


@contextlib.asynccontextmanager
async def running(settings: RecommendationsSettings) -> AsyncIterator[ServiceApp]:
    app = ServiceApp(settings)
    await build(app)
    async with running_service(app):
        yield app


@pytest.fixture
async def service(fresh_database: str, tmp_path: Path) -> AsyncIterator[Service]:
    settings = RecommendationsSettings(
        service="recommendations",
        city=unique_city(),
        home=tmp_path,
        grpc_port=free_port(),
        http_port=free_port(),
        dsn=fresh_database,
        nats_url=NATS_URL,
        mtls="off",
        allowed_callers=frozenset({"gateway"}),
    )
    bus = NatsBus(NATS_URL, settings.city)
    await bus.connect()
    try:
        async with (
            running(settings),
            grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel,
        ):
            yield Service(recommendations_pb2_grpc.RecommendationsServiceStub(channel), bus)
    finally:
        await bus.delete_streams()
        await bus.close()
