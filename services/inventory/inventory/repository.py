"""All of inventory's SQL. Stock only moves through conditional updates (`... WHERE available >= $q`),
never read-then-write, so concurrent orders cannot oversell whatever the isolation level."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from inventory.domain import Bucket, Line, Move, Reservation, State, Stock

_DELTA_COLUMNS = {Bucket.AVAILABLE: "available_delta", Bucket.RESERVED: "reserved_delta", Bucket.SOLD: "sold_delta"}


class _Short(Exception):
    """Rolls back the savepoint of a move that could not take every line."""


class Repository:
    """Works inside the caller's transaction on `conn`."""

    def __init__(self, conn: asyncpg.Connection):
        self._conn = conn

    async def lock_reservation(self, order_id: str) -> Reservation:
        """The order's reservation, locked until the transaction ends, so two events about one
        order (a retry overtaking a newer one) are applied one after the other."""
        await self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", order_id)
        row = await self._conn.fetchrow("SELECT state FROM reservations WHERE order_id = $1", order_id)
        if row is None:
            return Reservation(order_id)
        lines = await self._conn.fetch(
            "SELECT product_id, quantity FROM reservation_lines WHERE order_id = $1 ORDER BY product_id", order_id
        )
        return Reservation(
            order_id, State(row["state"]), tuple(Line(line["product_id"], line["quantity"]) for line in lines)
        )

    async def save_reservation(self, reservation: Reservation) -> None:
        await self._conn.execute(
            """INSERT INTO reservations (order_id, state) VALUES ($1, $2)
               ON CONFLICT (order_id) DO UPDATE SET state = excluded.state, updated_at = now()""",
            reservation.order_id,
            reservation.state.value,
        )
        await self._conn.executemany(
            "INSERT INTO reservation_lines (order_id, product_id, quantity) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [(reservation.order_id, line.product_id, line.quantity) for line in reservation.lines],
        )

    async def move(self, order_id: str, move: Move) -> list[str]:
        """Moves every line's units, or none; answers the products short of units (unknown ones
        included), empty when the move was made."""
        source, target = move.source.value, move.target.value
        short = []
        try:
            async with self._conn.transaction():  # a savepoint: a short line undoes the others
                for line in sorted(move.lines):
                    moved = await self._conn.fetchval(
                        f"""UPDATE stock SET {source} = {source} - $2, {target} = {target} + $2
                             WHERE product_id = $1 AND {source} >= $2 RETURNING true""",
                        line.product_id,
                        line.quantity,
                    )
                    if not moved:
                        short.append(line.product_id)
                if short:
                    raise _Short
                await self._record_movements(order_id, move)
        except _Short:
            pass
        return short

    async def _record_movements(self, order_id: str, move: Move) -> None:
        rows = []
        for line in move.lines:
            deltas = dict.fromkeys(_DELTA_COLUMNS.values(), 0)
            deltas[_DELTA_COLUMNS[move.source]] -= line.quantity
            deltas[_DELTA_COLUMNS[move.target]] += line.quantity
            rows.append((line.product_id, order_id, move.kind, *deltas.values()))
        await self._conn.executemany(
            """INSERT INTO stock_movements (product_id, order_id, kind, available_delta, reserved_delta, sold_delta)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            rows,
        )

    async def open(self, product_id: str, quantity: int) -> None:
        """Stocks a product never stocked before with `quantity` on sale (an adjustment); leaves
        any other as it is."""
        opened = await self._conn.fetchval(
            "INSERT INTO stock (product_id, available) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
            product_id,
            quantity,
        )
        if opened:
            await self._conn.execute(
                """INSERT INTO stock_movements (product_id, kind, available_delta, reserved_delta, sold_delta)
                   VALUES ($1, 'adjust', $2, 0, 0)""",
                product_id,
                quantity,
            )

    async def set_available(self, product_id: str, quantity: int) -> Stock:
        """Sets the units on sale, recording the difference as an adjustment."""
        await self._conn.execute("INSERT INTO stock (product_id) VALUES ($1) ON CONFLICT DO NOTHING", product_id)
        before = await self._conn.fetchval("SELECT available FROM stock WHERE product_id = $1 FOR UPDATE", product_id)
        row = await self._conn.fetchrow(
            "UPDATE stock SET available = $2 WHERE product_id = $1 RETURNING product_id, available, reserved, sold",
            product_id,
            quantity,
        )
        if quantity != before:
            await self._conn.execute(
                """INSERT INTO stock_movements (product_id, kind, available_delta, reserved_delta, sold_delta)
                   VALUES ($1, 'adjust', $2, 0, 0)""",
                product_id,
                quantity - before,
            )
        return Stock(**row)


async def get_stock(conn: asyncpg.Pool | asyncpg.Connection, product_ids: Sequence[str]) -> dict[str, Stock]:
    """Stock of the products asked for; a product never stocked is answered with zeros."""
    rows = await conn.fetch(
        "SELECT product_id, available, reserved, sold FROM stock WHERE product_id = ANY($1::text[])",
        list(product_ids),
    )
    found = {row["product_id"]: Stock(**row) for row in rows}
    return {product_id: found.get(product_id, Stock(product_id)) for product_id in product_ids}
