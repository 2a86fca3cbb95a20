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
    conn: asyncpg.Connection, *, event_id: str, kind: str, user_id: str, recipient: str, message_id: str, subject: str
) -> bool:
    """Claims the (event, kind) email; False if it was sent already."""
    claimed = await conn.fetchval(
        "INSERT INTO sent_emails (event_id, kind, user_id, recipient, message_id, subject)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id, kind) DO NOTHING RETURNING true",
        event_id,
        kind,
        user_id,
        recipient,
        message_id,
        subject,
    )
    return bool(claimed)
