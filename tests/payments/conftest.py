"""Payments' handlers on a throwaway database, fed events the way the consumer feeds them."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from chassis import db
from chassis.messaging import Envelope, Outbox, PostgresInbox
from payments.bootstrap import MIGRATIONS
from payments.domain import Payment
from payments.handlers import SUBSCRIPTIONS
from payments.provider import PaymentProvider, ProviderAdapter
from payments.provider_fake import PaymentProviderFake
from payments.repository import find_payment

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts" / "events"
USER = "0b6f8a52-3c1d-4f0e-8d7a-5e2b9c4a1f10"
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
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


def _order(order_id: str, total: int, user_id: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "user_id": user_id,
        "items": [
            {
                "product_id": "p-1",
                "name": "Espresso cup",
                "quantity": 1,
                "unit_price": {"amount": total, "currency": "USD"},
            }
        ],
        "total": {"amount": total, "currency": "USD"},
    }


def order_placed(order_id: str, *, token: str = "tok_visa", total: int = 4499, user_id: str = USER) -> Envelope:
    data = {**_order(order_id, total, user_id), "payment_token": token, "shipping_address": ADDRESS}
    return Envelope.new("orders", "OrderPlaced", data, subject=order_id)


def order_confirmed(order_id: str, *, total: int = 4499, user_id: str = USER) -> Envelope:
    data = {**_order(order_id, total, user_id), "shipping_address": ADDRESS}
    return Envelope.new("orders", "OrderConfirmed", data, subject=order_id)


def order_cancelled(
    order_id: str, *, total: int = 4499, user_id: str = USER, reason: str = "customer_request"
) -> Envelope:
    data = {**_order(order_id, total, user_id), "reason": reason}
    return Envelope.new("orders", "OrderCancelled", data, subject=order_id)


@dataclass
class Payments:
    """Payments' handlers with the real inbox, outbox and provider fake on a real database."""

    pool: asyncpg.Pool
    fake: PaymentProviderFake
    provider: PaymentProvider
    outbox: Outbox = field(default_factory=lambda: Outbox("payments"))

    async def deliver(self, event: Envelope, *, provider: PaymentProvider | None = None) -> bool:
        """What the consumer does with one delivery; False when the inbox says it was applied already."""
        handler = SUBSCRIPTIONS[event.type]

        async def apply(conn: asyncpg.Connection) -> None:
            await handler(event, conn, provider=provider or self.provider, outbox=self.outbox)

        return await PostgresInbox(self.pool).apply_once("payments", event.id, apply)

    async def payment(self, order_id: str) -> Payment | None:
        return await find_payment(self.pool, order_id)

    async def published(self, order_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(event name, data) of what payments put in its outbox for the order, in order."""
        rows = await self.pool.fetch(
            "SELECT event_type, envelope FROM outbox WHERE envelope->>'subject' = $1 ORDER BY id", order_id
        )
        return [(row["event_type"].split(".")[2], _data(row["envelope"])) for row in rows]

    async def charges(self, order_id: str) -> list[asyncpg.Record]:
        """The provider's own records of the order's charges."""
        return await self.pool.fetch(
            "SELECT * FROM provider_charges WHERE metadata->>'order_id' = $1 ORDER BY created, id", order_id
        )

    async def provider_requests(self, order_id: str) -> list[str]:
        """The idempotency keys the provider performed a request for (replays are not counted)."""
        rows = await self.pool.fetch(
            "SELECT key FROM provider_idempotency_keys WHERE key LIKE $1 ORDER BY key", f"{order_id}:%"
        )
        return [row["key"] for row in rows]


def _data(envelope: str | dict[str, Any]) -> dict[str, Any]:
    return (json.loads(envelope) if isinstance(envelope, str) else envelope)["data"]


@pytest.fixture
async def payments(fresh_database: str) -> AsyncIterator[Payments]:
    pool = await db.connect(fresh_database, min_size=1, max_size=6)
    provider_pool = await db.connect(fresh_database, min_size=1, max_size=4)
    try:
        await db.migrate(pool, MIGRATIONS)
        fake = PaymentProviderFake(provider_pool, latency_ms=0)
        yield Payments(pool, fake, ProviderAdapter(fake))
    finally:
        await provider_pool.close()
        await pool.close()
