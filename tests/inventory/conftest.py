"""Inventory against a throwaway Postgres: handlers driven through the real inbox, as the consumer
drives them, and the gRPC API through the real bootstrap and chassis server."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from agora.inventory.v1 import inventory_pb2_grpc

from chassis import auth, db
from chassis.grpc import CALLER_METADATA
from chassis.messaging import Envelope, NatsBus, Outbox, PostgresInbox
from chassis.runtime import ServiceApp
from inventory import handlers
from inventory.bootstrap import MIGRATIONS, InventorySettings, build
from tests.conftest import NATS_URL, unique_city
from tests.support import Tokens, free_port, running_service

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts" / "events"


@pytest.fixture(autouse=True)
def event_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    # Run from the repository root, `chassis` resolves as a namespace package without a
    # `__file__`, so the chassis cannot find the schemas by itself: name them explicitly.
    monkeypatch.setenv("AGORA_CONTRACTS_DIR", str(CONTRACTS))


def new_id() -> str:
    return str(uuid.uuid4())


def order_event(name: str, order_id: str, lines: dict[str, int], **extra: Any) -> Envelope:
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
    data = {"order_id": order_id, "user_id": "user-1", "items": items, "total": total, **extra}
    return Envelope.new("orders", name, data, subject=order_id)


ADDRESS = {"name": "Ada", "line1": "1 Main St", "city": "London", "postal_code": "N1", "country": "GB"}


def placed(order_id: str, lines: dict[str, int]) -> Envelope:
    return order_event("OrderPlaced", order_id, lines, payment_token="tok_visa", shipping_address=ADDRESS)


def confirmed(order_id: str, lines: dict[str, int]) -> Envelope:
    return order_event("OrderConfirmed", order_id, lines, shipping_address=ADDRESS)


def cancelled(order_id: str, lines: dict[str, int], reason: str = "customer_request") -> Envelope:
    return order_event("OrderCancelled", order_id, lines, reason=reason)


class Inventory:
    """Inventory's handlers on a real database, fed the way the consumer feeds them."""

    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool
        self.inbox = PostgresInbox(pool)
        self.outbox = Outbox("inventory")

    async def deliver(self, event: Envelope) -> bool:
        handler = handlers.SUBSCRIPTIONS[event.type]
        return await self.inbox.apply_once("inventory", event.id, lambda conn: handler(event, conn, outbox=self.outbox))

    async def set_stock(self, product_id: str, quantity: int) -> None:
        await handlers.set_stock(product_id, quantity, pool=self.pool)

    async def stock(self, product_id: str) -> tuple[int, int, int]:
        s = (await handlers.get_stock([product_id], pool=self.pool))[product_id]
        return s.available, s.reserved, s.sold

    async def published(self, order_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        rows = await self.pool.fetch("SELECT event_type, envelope FROM outbox ORDER BY id")
        events = [(row["event_type"].split(".")[2], json.loads(row["envelope"])["data"]) for row in rows]
        return [(name, data) for name, data in events if order_id is None or data["order_id"] == order_id]

    async def audit(self) -> list[asyncpg.Record]:
        """Per product: the stock row beside the sums of its ledger."""
        return await self.pool.fetch(
            """SELECT s.product_id, s.available, s.reserved, s.sold,
                      coalesce(sum(m.available_delta), 0) AS available_moved,
                      coalesce(sum(m.reserved_delta), 0) AS reserved_moved,
                      coalesce(sum(m.sold_delta), 0) AS sold_moved,
                      coalesce(sum(m.available_delta) FILTER (WHERE m.kind = 'adjust'), 0) AS adjusted
                 FROM stock s LEFT JOIN stock_movements m USING (product_id) GROUP BY s.product_id"""
        )


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.connect(fresh_database, min_size=1, max_size=12)
    await db.migrate(pool, MIGRATIONS)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def inventory(pool: asyncpg.Pool) -> Inventory:
    return Inventory(pool)


# ---------------------------------------------------------------- the running service


class Service:
    def __init__(self, stub: inventory_pb2_grpc.InventoryServiceStub, tokens: Tokens, bus: NatsBus):
        self.stub = stub
        self.tokens = tokens
        self.bus = bus

    async def publish(self, event: Envelope) -> None:
        await self.bus.publish(event.to_json(), event.type, msg_id=event.id, headers={})

    async def call(self, method: str, request: Any, *, token: str | None = None) -> Any:
        metadata = [(CALLER_METADATA, "gateway")]
        if token is not None:
            metadata.append(("authorization", f"Bearer {token}"))
        return await getattr(self.stub, method)(request, metadata=metadata, timeout=10)

    @property
    def admin(self) -> str:
        return self.tokens.sign("admin-1", "admin")

    @property
    def customer(self) -> str:
        return self.tokens.sign("user-1", "customer")


@contextlib.asynccontextmanager
async def running(settings: InventorySettings, verifier: auth.TokenVerifier) -> AsyncIterator[ServiceApp]:
    app = ServiceApp(settings)
    await build(app, verifier=verifier)
    async with running_service(app):
        yield app


@pytest.fixture
async def service(fresh_database: str, tmp_path: Path) -> AsyncIterator[Service]:
    city = unique_city()
    settings = InventorySettings(
        service="inventory",
        city=city,
        home=tmp_path,
        grpc_port=free_port(),
        http_port=free_port(),
        dsn=fresh_database,
        nats_url=NATS_URL,
        mtls="off",
        allowed_callers=frozenset({"gateway"}),
    )
    tokens = Tokens()
    bus = NatsBus(NATS_URL, city)
    await bus.connect()
    try:
        async with (
            running(settings, tokens.verifier()),
            grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel,
        ):
            yield Service(inventory_pb2_grpc.InventoryServiceStub(channel), tokens, bus)
    finally:
        await bus.delete_streams()
        await bus.close()
