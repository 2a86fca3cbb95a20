"""Inventory's use cases: one verb-named function each, the message first, dependencies by keyword.

The saga handlers run inside the inbox's transaction (`conn`): the stock moves, the reservation's
new state and the events it publishes commit together with the claim on the incoming event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import asyncpg

from chassis.messaging import Envelope
from inventory import domain, repository
from inventory.domain import Reservation, Stock, StockCorrupted
from inventory.repository import Repository


class Outbox(Protocol):
    async def add(self, conn: Any, name: str, data: dict[str, Any], *, subject: str | None = None) -> Any: ...


async def reserve_stock(event: Envelope, conn: asyncpg.Connection, *, outbox: Outbox) -> None:
    """OrderPlaced: reserve every line or none."""
    repo = Repository(conn)
    reservation = await repo.lock_reservation(event.data["order_id"])
    if not reservation.awaits_placement:
        return
    lines = domain.merge_lines(event.data["items"])
    short = await repo.move(reservation.order_id, domain.reserving(lines))
    reservation.reserve(lines, short=short)
    await _save(repo, outbox, reservation, conn)


async def sell_stock(event: Envelope, conn: asyncpg.Connection, *, outbox: Outbox) -> None:
    """OrderConfirmed: the reservation becomes a sale."""
    await _change(event.data["order_id"], Reservation.sell, conn, outbox)


async def return_stock(event: Envelope, conn: asyncpg.Connection, *, outbox: Outbox) -> None:
    """OrderCancelled: release the reservation or restock what was sold; before placement,
    leave a tombstone so a late OrderPlaced reserves nothing."""
    await _change(event.data["order_id"], Reservation.cancel, conn, outbox)


async def _change(
    order_id: str, change: Callable[[Reservation], domain.Move | None], conn: asyncpg.Connection, outbox: Outbox
) -> None:
    repo = Repository(conn)
    reservation = await repo.lock_reservation(order_id)
    move = change(reservation)
    if move is not None and (short := await repo.move(order_id, move)):
        raise StockCorrupted(f"order {order_id}: cannot {move.kind} {', '.join(short)}")
    await _save(repo, outbox, reservation, conn)


async def _save(repo: Repository, outbox: Outbox, reservation: Reservation, conn: asyncpg.Connection) -> None:
    if reservation.state is domain.State.NEW:
        return
    await repo.save_reservation(reservation)
    for event in reservation.events:
        await outbox.add(conn, type(event).__name__, domain.event_data(event), subject=reservation.order_id)
    reservation.events.clear()


async def open_starter_stock(event: Envelope, conn: asyncpg.Connection, *, outbox: Outbox) -> None:
    """ProductCreated: a product of the starter catalog gets an opening stock, so a new city sells
    at once. Only a product never stocked: a figure an admin set first stays."""
    if event.data.get("starter"):
        await Repository(conn).open(event.data["product_id"], domain.STARTER_STOCK)


async def set_stock(product_id: str, quantity: int, *, pool: asyncpg.Pool) -> Stock:
    domain.check_stock_quantity(quantity)
    async with pool.acquire() as conn, conn.transaction():
        return await Repository(conn).set_available(product_id, quantity)


async def get_stock(product_ids: Sequence[str], *, pool: asyncpg.Pool) -> dict[str, Stock]:
    return await repository.get_stock(pool, product_ids)


SUBSCRIPTIONS = {
    "agora.catalog.ProductCreated.v1": open_starter_stock,
    "agora.orders.OrderPlaced.v1": reserve_stock,
    "agora.orders.OrderConfirmed.v1": sell_stock,
    "agora.orders.OrderCancelled.v1": return_stock,
}
