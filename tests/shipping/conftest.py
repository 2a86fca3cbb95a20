"""Shipping against a throwaway Postgres: handlers driven through the real inbox, as the consumer
drives them, the dispatcher's pass called directly, and the carrier fake's own records."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from chassis import db
from chassis.auth import Principal
from chassis.messaging import Envelope, Outbox, PostgresInbox
from shipping import handlers
from shipping.bootstrap import MIGRATIONS
from shipping.carrier import CarrierAdapter
from shipping.carrier_fake import CarrierFake
from shipping.repository import Shipment

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts" / "events"
USER = "0b6f8a52-3c1d-4f0e-8d7a-5e2b9c4a1f10"
ADDRESS = {
    "name": "Zoë Ångström",
    "line1": "12 St James's Square",
    "line2": "",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


@pytest.fixture(autouse=True)
def event_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    # Run from the repository root, `chassis` can import as the namespace package `chassis/`,
    # which leaves the chassis unable to find contracts/events by itself.
    monkeypatch.setenv("AGORA_CONTRACTS_DIR", str(CONTRACTS))


def new_order_id() -> str:
    return str(uuid.uuid4())


def _order(order_id: str, user_id: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "user_id": user_id,
        "items": [
            {
                "product_id": "p-1",
                "name": "Espresso cup",
                "quantity": 2,
                "unit_price": {"amount": 1250, "currency": "USD"},
            }
        ],
        "total": {"amount": 2500, "currency": "USD"},
    }


def order_confirmed(order_id: str, *, user_id: str = USER) -> Envelope:
    return Envelope.new(
        "orders", "OrderConfirmed", {**_order(order_id, user_id), "shipping_address": ADDRESS}, subject=order_id
    )


def order_cancelled(order_id: str, *, user_id: str = USER) -> Envelope:
    return Envelope.new(
        "orders", "OrderCancelled", {**_order(order_id, user_id), "reason": "customer_request"}, subject=order_id
    )


@dataclass
class Shipping:
    """Shipping's handlers and dispatcher on a real database, with the carrier fake behind its adapter."""

    pool: asyncpg.Pool
    fake: CarrierFake
    carrier: CarrierAdapter
    outbox: Outbox
    dispatch_delay: timedelta = timedelta(0)

    async def deliver(self, event: Envelope, *, outbox: Any = None) -> bool:
        """What the consumer does with one delivery; False when the inbox says it was applied already."""
        handler = handlers.subscriptions(
            carrier=self.carrier, outbox=outbox or self.outbox, dispatch_delay=self.dispatch_delay
        )[event.type]
        return await PostgresInbox(self.pool).apply_once("shipping", event.id, lambda conn: handler(event, conn))

    async def cancel_for_orders(self, order_id: str, *, user_id: str = USER, outbox: Any = None) -> Shipment:
        """CancelShipment as orders asks it, with the customer's token."""
        return await handlers.cancel_before_dispatch(
            order_id,
            principal=Principal(user_id, frozenset({"customer"})),
            pool=self.pool,
            carrier=self.carrier,
            outbox=outbox or self.outbox,
        )

    async def dispatch_next(self, *, outbox: Any = None) -> bool:
        return await handlers.dispatch_next(self.pool, carrier=self.carrier, outbox=outbox or self.outbox)

    async def fall_due(self, order_id: str) -> None:
        await self.pool.execute("UPDATE shipments SET dispatch_at = now() WHERE order_id = $1", order_id)

    async def status(self, order_id: str) -> str | None:
        return await self.pool.fetchval("SELECT status FROM shipments WHERE order_id = $1", order_id)

    async def published(self, order_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(event name, data) of what shipping put in its outbox for the order, in order."""
        rows = await self.pool.fetch(
            "SELECT event_type, envelope FROM outbox WHERE envelope::jsonb->>'subject' = $1 ORDER BY id", order_id
        )
        return [(row["event_type"].split(".")[2], json.loads(row["envelope"])["data"]) for row in rows]

    async def consignments(self, order_id: str) -> list[asyncpg.Record]:
        """The carrier's own records for the order."""
        return await self.pool.fetch("SELECT * FROM carrier_consignments WHERE customer_ref = $1", order_id.upper())


@pytest.fixture
async def shipping(fresh_database: str) -> AsyncIterator[Shipping]:
    pool = await db.connect(fresh_database, min_size=1, max_size=12)
    carrier_pool = await db.connect(fresh_database, min_size=1, max_size=8)
    try:
        await db.migrate(pool, MIGRATIONS)
        fake = CarrierFake(carrier_pool, latency_ms=0)
        yield Shipping(pool, fake, CarrierAdapter(fake), Outbox("shipping"))
    finally:
        await carrier_pool.close()
        await pool.close()
