"""All of shipping's SQL (asyncpg). Status changes are conditional updates: whichever of the
dispatcher and a cancel changes `created` first decides, and the other changes nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg


@dataclass(frozen=True)
class Shipment:
    order_id: str
    user_id: str
    status: str
    carrier: str | None
    consignment_no: str | None
    tracking_number: str | None
    trace: dict[str, str] = field(default_factory=dict)
    """The trace context the shipment was created in (W3C headers), and the id of the request it
    serves (`chassis.request_id.EVENT_HEADER`)."""

    @property
    def is_tombstone(self) -> bool:
        return self.consignment_no is None


async def lock_order(conn: asyncpg.Connection, order_id: str) -> None:
    """Serializes shipping's event handlers for one order until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('shipping:' || $1, 0))", order_id)


async def get(conn: asyncpg.Connection | asyncpg.Pool, order_id: str) -> Shipment | None:
    row = await conn.fetchrow("SELECT * FROM shipments WHERE order_id = $1", order_id)
    return _shipment(row) if row else None


async def add(
    conn: asyncpg.Connection,
    order_id: str,
    user_id: str,
    *,
    carrier: str,
    consignment_no: str,
    delay: timedelta,
    trace: dict[str, str],
) -> None:
    await conn.execute(
        "INSERT INTO shipments (order_id, user_id, status, carrier, consignment_no, dispatch_at, trace)"
        " VALUES ($1, $2, 'created', $3, $4, now() + $5, $6)",
        order_id,
        user_id,
        carrier,
        consignment_no,
        delay,
        json.dumps(trace),
    )


async def add_tombstone(conn: asyncpg.Connection, order_id: str, user_id: str) -> Shipment:
    """The order's tombstone; the order must be locked (`lock_order`) and have no row yet."""
    row = await conn.fetchrow(
        "INSERT INTO shipments (order_id, user_id, status) VALUES ($1, $2, 'cancelled') RETURNING *",
        order_id,
        user_id,
    )
    return _shipment(row)


async def cancel(conn: asyncpg.Connection, order_id: str) -> Shipment | None:
    """Cancels the shipment if it is still `created`; None if it was dispatched or cancelled first.
    Waits for a dispatcher holding the row, then sees what it decided."""
    row = await conn.fetchrow(
        "UPDATE shipments SET status = 'cancelled', updated_at = now()"
        " WHERE order_id = $1 AND status = 'created' RETURNING *",
        order_id,
    )
    return _shipment(row) if row else None


async def claim_due(conn: asyncpg.Connection) -> Shipment | None:
    """The next shipment due for dispatch, locked until the transaction ends. Rows another
    dispatcher or a cancel holds are skipped, never waited for."""
    row = await conn.fetchrow(
        "SELECT * FROM shipments WHERE status = 'created' AND dispatch_at <= now()"
        " ORDER BY dispatch_at LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    return _shipment(row) if row else None


async def mark_dispatched(conn: asyncpg.Connection, order_id: str, tracking_number: str) -> Shipment | None:
    row = await conn.fetchrow(
        "UPDATE shipments SET status = 'dispatched', tracking_number = $2, updated_at = now()"
        " WHERE order_id = $1 AND status = 'created' RETURNING *",
        order_id,
        tracking_number,
    )
    return _shipment(row) if row else None


async def record_dispatch_instead_of_cancel(conn: asyncpg.Connection, order_id: str, tracking_number: str) -> Shipment:
    """In the transaction that cancelled the row: the carrier had dispatched it after all."""
    row = await conn.fetchrow(
        "UPDATE shipments SET status = 'dispatched', tracking_number = $2, updated_at = now()"
        " WHERE order_id = $1 AND status = 'cancelled' RETURNING *",
        order_id,
        tracking_number,
    )
    return _shipment(row)


async def postpone(conn: asyncpg.Connection, order_id: str, *, latest: timedelta) -> None:
    """After a failed dispatch: try again later, backing off per attempt, at most `latest` later."""
    await conn.execute(
        "UPDATE shipments SET dispatch_attempts = dispatch_attempts + 1,"
        " dispatch_at = now() + least($2, make_interval(secs => 2 ^ dispatch_attempts))"
        " WHERE order_id = $1 AND status = 'created'",
        order_id,
        latest,
    )


def _shipment(row: asyncpg.Record) -> Shipment:
    return Shipment(
        order_id=row["order_id"],
        user_id=row["user_id"],
        status=row["status"],
        carrier=row["carrier"],
        consignment_no=row["consignment_no"],
        tracking_number=row["tracking_number"],
        trace=json.loads(row["trace"]),
    )
