"""All of notifications' SQL (asyncpg), on the connection of the handler's transaction."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class Customer:
    user_id: str
    email: str
    name: str


async def save_customer(conn: asyncpg.Connection, customer: Customer) -> None:
    await conn.execute(
        "INSERT INTO customers (user_id, email, name) VALUES ($1, $2, $3)"
        " ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, name = excluded.name",
        customer.user_id,
        customer.email,
        customer.name,
    )


async def find_customer(conn: asyncpg.Connection, user_id: str) -> Customer | None:
    row = await conn.fetchrow("SELECT user_id, email, name FROM customers WHERE user_id = $1", user_id)
    return Customer(**dict(row)) if row else None


async def record_sent(
    conn: asyncpg.Connection,
    *,
    event_id: str,
    kind: str,
    user_id: str,
    recipient: str,
    message_id: str,
    subject: str,
    order_id: str | None,
) -> bool:
    """Claims the (event, kind) email; False if it was sent already."""
    claimed = await conn.fetchval(
        "INSERT INTO sent_emails (event_id, kind, user_id, recipient, message_id, subject, order_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id, kind) DO NOTHING RETURNING true",
        event_id,
        kind,
        user_id,
        recipient,
        message_id,
        subject,
        order_id,
    )
    return bool(claimed)


async def lock_order(conn: asyncpg.Connection, order_id: str) -> None:
    """Serializes the emails of one order, across replicas, until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('notifications:' || $1, 0))", order_id)


async def kinds_sent_for_order(conn: asyncpg.Connection, order_id: str) -> set[str]:
    rows = await conn.fetch("SELECT DISTINCT kind FROM sent_emails WHERE order_id = $1", order_id)
    return {row["kind"] for row in rows}
