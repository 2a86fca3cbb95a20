"""Analytics' use cases: one recorder per event type it projects, and the sales report.

Each recorder runs inside the inbox's transaction (`conn`), so a redelivered event is applied
once; and each records only idempotent facts, so a replay may apply it again (analytics/replay.py).
Every recorder holds the projections' shared lock first: a replay swapping in fresh projections
waits for the recorders in flight, and the next ones wait for it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from analytics import repository
from analytics.repository import SalesReport
from chassis.messaging import Envelope

REPORT_CURRENCY = "USD"

Recorder = Callable[[Envelope, Any], Awaitable[None]]


class Unreportable(ValueError):
    """A valid event the report cannot take (money in another currency): retrying cannot help."""


async def record_confirmation(event: Envelope, conn: asyncpg.Connection) -> None:
    """OrderConfirmed: a confirmed order, its lines, and its products' names as of the order."""
    order_id, items = event.data["order_id"], event.data["items"]
    await repository.record_order(conn, order_id, confirmed=True)
    await repository.record_lines(conn, order_id, [(item["product_id"], item["quantity"]) for item in items])
    for item in items:
        await repository.describe_product(conn, item["product_id"], item["name"], event.time)


async def record_cancellation(event: Envelope, conn: asyncpg.Connection) -> None:
    """OrderCancelled: whatever it was before, the order no longer counts as sold."""
    await repository.record_order(conn, event.data["order_id"], cancelled=True)


async def record_shipment(event: Envelope, conn: asyncpg.Connection) -> None:
    await repository.record_order(conn, event.data["order_id"], shipped=True)


async def record_capture(event: Envelope, conn: asyncpg.Connection) -> None:
    await _record_payment(event, conn, "captured")


async def record_refund(event: Envelope, conn: asyncpg.Connection) -> None:
    await _record_payment(event, conn, "refunded")


async def _record_payment(event: Envelope, conn: asyncpg.Connection, kind: str) -> None:
    amount = event.data["amount"]
    if amount["currency"] != REPORT_CURRENCY:
        raise Unreportable(f"{event.type} {event.id}: {amount['currency']} is not {REPORT_CURRENCY}")
    await repository.record_payment(conn, event.id, event.data["order_id"], kind, amount["amount"], amount["currency"])


async def record_product(event: Envelope, conn: asyncpg.Connection) -> None:
    """ProductCreated: the catalog's name for it."""
    await repository.describe_product(conn, event.data["product_id"], event.data["name"], event.time)


async def record_registration(event: Envelope, conn: asyncpg.Connection) -> None:
    await repository.record_user(conn, event.data["user_id"])


async def sales_report(*, pool: asyncpg.Pool) -> SalesReport:
    return await repository.sales_report(pool)


def _sharing_projections(record: Recorder) -> Recorder:
    @functools.wraps(record)
    async def handler(event: Envelope, conn: asyncpg.Connection) -> None:
        await repository.share_projections(conn)
        await record(event, conn)

    return handler


SUBSCRIPTIONS: dict[str, Recorder] = {
    event_type: _sharing_projections(record)
    for event_type, record in {
        "agora.orders.OrderConfirmed.v1": record_confirmation,
        "agora.orders.OrderCancelled.v1": record_cancellation,
        "agora.orders.OrderShipped.v1": record_shipment,
        "agora.payments.PaymentCaptured.v1": record_capture,
        "agora.payments.PaymentRefunded.v1": record_refund,
        "agora.catalog.ProductCreated.v1": record_product,
        "agora.identity.UserRegistered.v1": record_registration,
    }.items()
}
