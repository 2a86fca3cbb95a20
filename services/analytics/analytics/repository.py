"""All of analytics' SQL. Writes are idempotent facts (see the migration); the report is computed
from them when asked for.

Names are unqualified on purpose: on a replay's connection, temporary tables of the same names
shadow the live ones (PostgreSQL looks in `pg_temp` first), so the replay runs these very
statements into a fresh copy of the projections (analytics/replay.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

PROJECTIONS = ("orders", "order_lines", "payments", "product_names", "users")
"""Every projection table, parents before children."""
SCHEMA = "public"
"""Where the live projections are (the migrations create them there)."""
TOP_PRODUCTS = 5

# Live handlers share this lock; a replay takes it alone while it swaps the projections in.
_PROJECTIONS_LOCK = 0x616E_616C_7974  # "analyt"
_REPLAY_LOCK = 0x7265_706C_6179  # "replay"


@dataclass(frozen=True)
class TopProduct:
    product_id: str
    name: str
    units: int


@dataclass(frozen=True)
class SalesReport:
    orders_confirmed: int
    orders_cancelled: int
    orders_shipped: int
    revenue_cents: int
    refunded_cents: int
    users_registered: int
    top_products: list[TopProduct]


async def share_projections(conn: asyncpg.Connection) -> None:
    """Held by every event handler until its transaction ends, so a replay can wait them out."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", _PROJECTIONS_LOCK)


async def record_order(
    conn: asyncpg.Connection, order_id: str, *, confirmed: bool = False, cancelled: bool = False, shipped: bool = False
) -> None:
    """Turns the given flags on; a flag never turns off."""
    await conn.execute(
        """INSERT INTO orders (order_id, confirmed, cancelled, shipped) VALUES ($1, $2, $3, $4)
           ON CONFLICT (order_id) DO UPDATE SET confirmed = orders.confirmed OR excluded.confirmed,
                                                cancelled = orders.cancelled OR excluded.cancelled,
                                                shipped = orders.shipped OR excluded.shipped""",
        order_id,
        confirmed,
        cancelled,
        shipped,
    )


async def record_lines(conn: asyncpg.Connection, order_id: str, lines: Sequence[tuple[str, int]]) -> None:
    await conn.executemany(
        "INSERT INTO order_lines (order_id, line, product_id, units) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        [(order_id, position, product_id, units) for position, (product_id, units) in enumerate(lines)],
    )


async def describe_product(conn: asyncpg.Connection, product_id: str, name: str, described_at: str) -> None:
    """Keeps the latest name by event time; an equal time keeps the greater name, so the
    outcome never depends on arrival order."""
    await conn.execute(
        """INSERT INTO product_names (product_id, name, described_at) VALUES ($1, $2, $3::text::timestamptz)
           ON CONFLICT (product_id) DO UPDATE SET name = excluded.name, described_at = excluded.described_at
            WHERE (product_names.described_at, product_names.name) < (excluded.described_at, excluded.name)""",
        product_id,
        name,
        described_at,
    )


async def record_payment(
    conn: asyncpg.Connection, event_id: str, order_id: str, kind: str, amount: int, currency: str
) -> None:
    await conn.execute(
        """INSERT INTO payments (event_id, order_id, kind, amount, currency) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (event_id) DO NOTHING""",
        event_id,
        order_id,
        kind,
        amount,
        currency,
    )


async def record_user(conn: asyncpg.Connection, user_id: str) -> None:
    await conn.execute("INSERT INTO users (user_id) VALUES ($1) ON CONFLICT DO NOTHING", user_id)


async def sales_report(pool: asyncpg.Pool) -> SalesReport:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        orders = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE confirmed) AS confirmed,
                      count(*) FILTER (WHERE cancelled) AS cancelled,
                      count(*) FILTER (WHERE shipped) AS shipped
                 FROM orders"""
        )
        money = await conn.fetchrow(
            """SELECT coalesce(sum(amount) FILTER (WHERE kind = 'captured'), 0)::bigint AS captured,
                      coalesce(sum(amount) FILTER (WHERE kind = 'refunded'), 0)::bigint AS refunded
                 FROM payments"""
        )
        users = await conn.fetchval("SELECT count(*) FROM users")
        top = await conn.fetch(
            """SELECT l.product_id, coalesce(n.name, '') AS name, sum(l.units) AS units
                 FROM order_lines l
                 JOIN orders o ON o.order_id = l.order_id AND o.confirmed AND NOT o.cancelled
                 LEFT JOIN product_names n ON n.product_id = l.product_id
                GROUP BY l.product_id, n.name
                ORDER BY units DESC, l.product_id
                LIMIT $1""",
            TOP_PRODUCTS,
        )
    return SalesReport(
        orders_confirmed=orders["confirmed"],
        orders_cancelled=orders["cancelled"],
        orders_shipped=orders["shipped"],
        revenue_cents=money["captured"],
        refunded_cents=money["refunded"],
        users_registered=users,
        top_products=[TopProduct(row["product_id"], row["name"], row["units"]) for row in top],
    )


# ---------------------------------------------------------------- replay


async def try_lock_replay(conn: asyncpg.Connection) -> bool:
    """One replay at a time, across every instance; released when `conn` closes."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", _REPLAY_LOCK))


async def create_fresh_projections(conn: asyncpg.Connection) -> None:
    """Empty temporary copies of the projections, visible only on `conn`, shadowing the live ones there."""
    for table in PROJECTIONS:
        await conn.execute(f"CREATE TEMPORARY TABLE {table} (LIKE {SCHEMA}.{table} INCLUDING ALL)")


async def lock_projections(conn: asyncpg.Connection) -> None:
    """Waits for the handlers in flight and holds off new ones until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _PROJECTIONS_LOCK)


async def replace_projections(conn: asyncpg.Connection) -> None:
    """The live projections become the fresh copies. Readers keep seeing the old figures until commit."""
    for table in reversed(PROJECTIONS):
        await conn.execute(f"DELETE FROM {SCHEMA}.{table}")
    for table in PROJECTIONS:
        await conn.execute(f"INSERT INTO {SCHEMA}.{table} SELECT * FROM pg_temp.{table}")
