"""Analytics against a throwaway Postgres: recorders driven through the real inbox, as the consumer
drives them, and the service through the real bootstrap, chassis gRPC server and NATS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from agora.analytics.v1 import analytics_pb2, analytics_pb2_grpc

from agora_cli.config import Config
from analytics import handlers
from analytics.bootstrap import MIGRATIONS, AnalyticsSettings, build
from chassis import auth, db
from chassis.grpc import CALLER_METADATA
from chassis.messaging import Envelope, NatsBus, PostgresInbox
from chassis.runtime import ServiceApp
from tests.conftest import NATS_URL, unique_city
from tests.support import Tokens, free_port, running_service

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts" / "events"
ADDRESS = {"name": "Ada", "line1": "1 Main St", "city": "London", "postal_code": "N1", "country": "GB"}


@pytest.fixture(autouse=True)
def event_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    # Run from the repository root, `chassis` resolves as a namespace package without a
    # `__file__`, so the chassis cannot find the schemas by itself: name them explicitly.
    monkeypatch.setenv("AGORA_CONTRACTS_DIR", str(CONTRACTS))


def new_id() -> str:
    return str(uuid.uuid4())


def usd(cents: int) -> dict[str, Any]:
    return {"amount": cents, "currency": "USD"}


def _order(name: str, order_id: str, lines: dict[str, int], **extra: Any) -> Envelope:
    """`lines`: product id → quantity, at $1.00 a unit, named "Product <id>"."""
    items = [
        {"product_id": product, "name": f"Product {product}", "quantity": quantity, "unit_price": usd(100)}
        for product, quantity in lines.items()
    ]
    data = {"order_id": order_id, "user_id": "user-1", "items": items, "total": usd(100 * sum(lines.values())), **extra}
    return Envelope.new("orders", name, data, subject=order_id)


def confirmed(order_id: str, lines: dict[str, int]) -> Envelope:
    return _order("OrderConfirmed", order_id, lines, shipping_address=ADDRESS)


def cancelled(order_id: str, lines: dict[str, int], reason: str = "customer_request") -> Envelope:
    return _order("OrderCancelled", order_id, lines, reason=reason)


def shipped(order_id: str) -> Envelope:
    data = {"order_id": order_id, "user_id": "user-1", "carrier": "parcelfast", "tracking_number": "PF1"}
    return Envelope.new("orders", "OrderShipped", data, subject=order_id)


def captured(order_id: str, cents: int, currency: str = "USD") -> Envelope:
    data = {"order_id": order_id, "amount": {"amount": cents, "currency": currency}}
    return Envelope.new("payments", "PaymentCaptured", data, subject=order_id)


def refunded(order_id: str, cents: int) -> Envelope:
    return Envelope.new("payments", "PaymentRefunded", {"order_id": order_id, "amount": usd(cents)}, subject=order_id)


def registered(user_id: str | None = None) -> Envelope:
    user_id = user_id or new_id()
    data = {"user_id": user_id, "email": "ada@example.com", "name": "Ada"}
    return Envelope.new("identity", "UserRegistered", data, subject=user_id)


def product_created(product_id: str, name: str) -> Envelope:
    data = {
        "product_id": product_id,
        "sku": f"SKU-{product_id}",
        "name": name,
        "description": "",
        "price": usd(100),
        "categories": [],
        "image_url": "",
    }
    return Envelope.new("catalog", "ProductCreated", data, subject=product_id)


def history() -> list[Envelope]:
    """A small shop's history across four producers, with every outcome the report tells apart."""
    kept, cancelled_after, rejected, shipped_order = new_id(), new_id(), new_id(), new_id()
    return [
        registered(),
        registered(),
        product_created("cup", "Espresso cup"),
        confirmed(kept, {"cup": 2, "jug": 1}),
        captured(kept, 300),
        confirmed(cancelled_after, {"cup": 5}),
        captured(cancelled_after, 500),
        cancelled(cancelled_after, {"cup": 5}),
        refunded(cancelled_after, 500),
        cancelled(rejected, {"tray": 4}, reason="out_of_stock"),
        confirmed(shipped_order, {"jug": 3}),
        captured(shipped_order, 300),
        shipped(shipped_order),
    ]


def figures(report: analytics_pb2.SalesReportResponse) -> dict[str, Any]:
    return {
        "orders_confirmed": report.orders_confirmed,
        "orders_cancelled": report.orders_cancelled,
        "orders_shipped": report.orders_shipped,
        "users_registered": report.users_registered,
        "revenue": (report.revenue.amount, report.revenue.currency),
        "refunded": (report.refunded.amount, report.refunded.currency),
        "top_products": [(top.product_id, top.name, top.units) for top in report.top_products],
    }


HISTORY_FIGURES = {
    "orders_confirmed": 3,
    "orders_cancelled": 2,
    "orders_shipped": 1,
    "users_registered": 2,
    "revenue": (1100, "USD"),
    "refunded": (500, "USD"),
    "top_products": [("jug", "Product jug", 4), ("cup", "Product cup", 2)],
}
"""What `history()` adds up to. The cup's name is the order's: it is later than the catalog's."""


class Analytics:
    """The recorders on a real database, fed the way the consumer feeds them."""

    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool
        self.inbox = PostgresInbox(pool)

    async def deliver(self, *events: Envelope) -> list[bool]:
        return [
            await self.inbox.apply_once(
                "analytics", event.id, lambda conn, event=event: handlers.SUBSCRIPTIONS[event.type](event, conn)
            )
            for event in events
        ]

    async def report(self) -> dict[str, Any]:
        report = await handlers.sales_report(pool=self.pool)
        return {
            "orders_confirmed": report.orders_confirmed,
            "orders_cancelled": report.orders_cancelled,
            "orders_shipped": report.orders_shipped,
            "users_registered": report.users_registered,
            "revenue": (report.revenue_cents, "USD"),
            "refunded": (report.refunded_cents, "USD"),
            "top_products": [(top.product_id, top.name, top.units) for top in report.top_products],
        }


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.connect(fresh_database, min_size=1, max_size=8)
    await db.migrate(pool, MIGRATIONS)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def analytics(pool: asyncpg.Pool) -> Analytics:
    return Analytics(pool)


# ---------------------------------------------------------------- the running service


class Service:
    def __init__(self, settings: AnalyticsSettings, stub: analytics_pb2_grpc.AnalyticsServiceStub, bus: NatsBus):
        self.settings = settings
        self.stub = stub
        self.bus = bus
        self.tokens = Tokens()

    async def publish(self, *events: Envelope) -> None:
        for event in events:
            await self.bus.publish(event.to_json(), event.type, msg_id=event.id, headers={})

    async def call(self, method: str, request: Any, *, caller: str = "gateway", token: str | None = None) -> Any:
        metadata = [(CALLER_METADATA, caller)]
        if token is not None:
            metadata.append(("authorization", f"Bearer {token}"))
        return await getattr(self.stub, method)(request, metadata=metadata, timeout=30)

    async def report(self) -> dict[str, Any]:
        admin = self.tokens.sign("admin-1", "admin")
        return figures(await self.call("SalesReport", analytics_pb2.SalesReportRequest(), token=admin))

    async def report_settles_on(self, expected: dict[str, Any], timeout: float = 15) -> None:
        """Waits until the live consumer has applied what was published."""
        async with asyncio.timeout(timeout):
            while await self.report() != expected:  # noqa: ASYNC110 (the report has no change notification)
                await asyncio.sleep(0.05)

    def cli_config(self, *, supervisor_pid: int | None = None) -> Config:
        """How `agora replay analytics` finds this service: a city.json naming it."""
        config = Config.from_env({"AGORA_HOME": str(self.settings.home / "cli"), "AGORA_MTLS": "off"})
        config.home.root.mkdir(parents=True, exist_ok=True)
        city = {
            "supervisor": {"pid": supervisor_pid or os.getpid(), "create_time": None},
            "services": [{"name": "analytics", "instance": 0, "pid": None, "grpc": f"127.0.0.1:{self.settings.grpc_port}"}],
            "infra": [],
        }
        config.home.state_file.write_text(json.dumps(city))
        return config


@contextlib.asynccontextmanager
async def running(settings: AnalyticsSettings, verifier: auth.TokenVerifier) -> AsyncIterator[ServiceApp]:
    app = ServiceApp(settings)
    await build(app, verifier=verifier)
    async with running_service(app):
        yield app


@pytest.fixture
async def service(fresh_database: str, tmp_path: Path) -> AsyncIterator[Service]:
    settings = AnalyticsSettings(
        service="analytics",
        city=unique_city(),
        home=tmp_path,
        grpc_port=free_port(),
        http_port=free_port(),
        dsn=fresh_database,
        nats_url=NATS_URL,
        mtls="off",
        allowed_callers=frozenset({"gateway", "cli"}),
    )
    bus = NatsBus(NATS_URL, settings.city)
    await bus.connect()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
            service = Service(settings, analytics_pb2_grpc.AnalyticsServiceStub(channel), bus)
            async with running(settings, service.tokens.verifier()):
                yield service
    finally:
        await bus.delete_streams()
        await bus.close()
