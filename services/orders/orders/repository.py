"""All of orders' SQL (asyncpg)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from chassis.ids import parse_id
from chassis.messaging.inbox import CLAIM_LIFETIME_SECONDS
from orders.domain import Address, Line, Money, Order, StatusChange

Connection: TypeAlias = asyncpg.Connection | asyncpg.Pool

_COLUMNS = """id::text AS id, user_id, status, status_reason, stock, payment, items, shipping_address, history,
              carrier, tracking_number"""


@dataclass(frozen=True)
class ClaimedKey:
    fingerprint: str
    order_id: str


def _order(row: asyncpg.Record) -> Order:
    items = tuple(
        Line(item["product_id"], item["name"], item["quantity"], Money(**item["unit_price"]))
        for item in json.loads(row["items"])
    )
    history = [
        StatusChange(change["status"], datetime.fromisoformat(change["at"])) for change in json.loads(row["history"])
    ]
    return Order(
        id=row["id"],
        user_id=row["user_id"],
        items=items,
        shipping_address=Address(**json.loads(row["shipping_address"])),
        history=history,
        status_reason=row["status_reason"],
        stock=row["stock"],
        payment=row["payment"],
        carrier=row["carrier"],
        tracking_number=row["tracking_number"],
    )


def _history(order: Order) -> str:
    return json.dumps([{"status": change.status, "at": change.at.isoformat()} for change in order.history])


async def add_order(conn: asyncpg.Connection, order: Order) -> None:
    items: list[dict[str, Any]] = [asdict(line) for line in order.items]
    await conn.execute(
        """INSERT INTO orders (id, user_id, status, status_reason, stock, payment, items, total_amount, currency,
                               shipping_address, history, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)""",
        uuid.UUID(order.id),
        order.user_id,
        order.status,
        order.status_reason,
        order.stock,
        order.payment,
        json.dumps(items),
        order.total.amount,
        order.total.currency,
        json.dumps(asdict(order.shipping_address)),
        _history(order),
        order.created_at,
        order.updated_at,
    )


async def save_order(conn: asyncpg.Connection, order: Order) -> None:
    """Writes back what an order's lifecycle changes; the order must be locked (`order_for_update`)."""
    await conn.execute(
        """UPDATE orders SET status = $2, status_reason = $3, stock = $4, payment = $5, history = $6,
                             carrier = $7, tracking_number = $8, updated_at = $9
           WHERE id = $1""",
        uuid.UUID(order.id),
        order.status,
        order.status_reason,
        order.stock,
        order.payment,
        _history(order),
        order.carrier,
        order.tracking_number,
        order.updated_at,
    )


async def order_for_update(conn: asyncpg.Connection, order_id: str) -> Order | None:
    """The order, locked until the transaction ends: its events are applied one at a time."""
    key = parse_id(order_id)
    if key is None:
        return None
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM orders WHERE id = $1 FOR UPDATE", key)
    return _order(row) if row else None


async def order_of(conn: Connection, user_id: str, order_id: str) -> Order | None:
    """The order if it is this user's; another user's is as good as absent."""
    key = parse_id(order_id)
    if key is None:
        return None
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM orders WHERE id = $1 AND user_id = $2", key, user_id)
    return _order(row) if row else None


async def orders_of(conn: Connection, user_id: str, *, page: int, page_size: int) -> tuple[list[Order], int]:
    """One page of the user's orders, newest first, and how many they have in all."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS}, count(*) OVER () AS total FROM orders WHERE user_id = $1
            ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3""",
        user_id,
        page_size,
        (page - 1) * page_size,
    )
    if rows:
        return [_order(row) for row in rows], rows[0]["total"]
    return [], await conn.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", user_id)


def placing_lock_of(user_id: str) -> int:
    """The advisory lock key that serialises one user's placings (64 bits of a keyed digest)."""
    digest = hashlib.blake2b(user_id.encode(), digest_size=8, person=b"agora-placing").digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class LinesLeft:
    """An earlier order's lines that cart did not confirm taking out of the user's cart."""

    order_id: str
    lines: list[tuple[str, int]]


LINES_LEFT_SECONDS = CLAIM_LIFETIME_SECONDS
"""How long an order's lines left in the cart are taken out by the user's next placing. No longer
than cart remembers an order whose lines it took out (the chassis's claim lifetime, from the
taking out, which is later): asked after that, it would take them out of a newer cart again.
`OrderPlaced` has long reached cart by then."""


async def try_lock_placing(conn: asyncpg.Connection, lock: int, user_id: str) -> tuple[bool, list[LinesLeft]]:
    """Takes the user's placing lock for the session (released by `db.unlock`); False while
    another placing of theirs holds it. With it, in the same round trip, the lines the user's
    earlier orders left in the cart."""
    row = await conn.fetchrow(
        """SELECT pg_try_advisory_lock($1) AS locked,
                  (SELECT jsonb_agg(jsonb_build_array(order_id, lines)) FROM lines_left_in_cart
                    WHERE user_id = $2 AND created_at > now() - make_interval(secs => $3)) AS left_in_cart""",
        lock,
        user_id,
        LINES_LEFT_SECONDS,
    )
    left = [LinesLeft(order_id, [(product_id, quantity) for product_id, quantity in lines])
            for order_id, lines in json.loads(row["left_in_cart"] or "[]")]
    return row["locked"], left


async def remember_lines_left(conn: asyncpg.Connection, order_id: str, user_id: str, lines: list[tuple[str, int]]) -> None:
    await conn.execute(
        "INSERT INTO lines_left_in_cart (order_id, user_id, lines) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        uuid.UUID(order_id),
        user_id,
        json.dumps(lines),
    )


async def forget_lines_left(conn: asyncpg.Connection, order_ids: list[str]) -> None:
    await conn.execute(
        "DELETE FROM lines_left_in_cart WHERE order_id = ANY($1::uuid[])", [uuid.UUID(order_id) for order_id in order_ids]
    )


async def lock_key(conn: asyncpg.Connection, user_id: str, key: str) -> bool:
    """Takes the key for this transaction; False while another transaction holds it."""
    return await conn.fetchval(
        # Length-prefixed, so no two (user, key) pairs hash the same text.
        "SELECT pg_try_advisory_xact_lock(hashtextextended(length($1) || ':' || $1 || $2, 0))",
        user_id,
        key,
    )


async def claimed_key(conn: asyncpg.Connection, user_id: str, key: str) -> ClaimedKey | None:
    row = await conn.fetchrow(
        "SELECT fingerprint, order_id::text AS order_id FROM idempotency_keys WHERE user_id = $1 AND key = $2",
        user_id,
        key,
    )
    return ClaimedKey(row["fingerprint"], row["order_id"]) if row else None


async def claim_key(conn: asyncpg.Connection, user_id: str, key: str, fingerprint: str, order_id: str) -> None:
    await conn.execute(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, order_id) VALUES ($1, $2, $3, $4)",
        user_id,
        key,
        fingerprint,
        uuid.UUID(order_id),
    )


async def forget_lines_left_expired(pool: asyncpg.Pool) -> int:
    """Deletes the lines left in carts longer than `LINES_LEFT_SECONDS` ago, no longer taken out."""
    deleted = await pool.execute(
        "DELETE FROM lines_left_in_cart WHERE created_at < now() - make_interval(secs => $1)", LINES_LEFT_SECONDS
    )
    return int(deleted.split()[-1])


FORGET_KEYS = "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)"
"""Served by the B-tree on `created_at`, not a scan of every key kept."""


async def forget_keys_older_than(pool: asyncpg.Pool, hours: float) -> int:
    """Deletes idempotency keys claimed more than `hours` ago; their orders stay."""
    deleted = await pool.execute(FORGET_KEYS, hours * 3600)
    return int(deleted.split()[-1])
