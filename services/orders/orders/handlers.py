"""Orders' use cases, one verb-named function each: the message first, dependencies by keyword.

Requests from the gateway (`place_order`, `get_order`, `follow_order`, `list_orders`,
`cancel_order`) and the events of the saga (`SUBSCRIPTIONS`, at the bottom). An event handler
runs inside the inbox's transaction, so the order's change, the events it raises and the inbox
claim commit together.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import asdict
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from chassis import db
from chassis.grpc import DependencyUnavailable
from chassis.logs import get_logger
from orders import domain, repository
from orders.domain import CancelOrder, GetOrder, ListOrders, Money, Order, PlaceOrder

log = get_logger(__name__)

Clock = Callable[[], datetime]


class Outbox(Protocol):
    async def add(self, conn: Any, name: str, data: dict[str, Any], *, subject: str | None = None) -> Any: ...


class Cart(Protocol):
    async def quantities(self) -> list[tuple[str, int]]: ...
    async def remove_ordered(self, order_id: str, lines: Iterable[tuple[str, int]]) -> str | None: ...


class Catalog(Protocol):
    async def prices(self, product_ids: Iterable[str]) -> dict[str, tuple[str, Money]]: ...


class Shipping(Protocol):
    async def cancel_shipment(self, order_id: str) -> None: ...


class Changes(Protocol):
    ending: bool

    def following(self, order_id: str) -> contextlib.AbstractContextManager[asyncio.Event]: ...


class Event(Protocol):
    """What a consumer hands a handler: an event's id and its data (chassis.messaging)."""

    id: str
    data: dict[str, Any]


# ---------------------------------------------------------------- requests


async def place_order(
    command: PlaceOrder, *, pool: asyncpg.Pool, cart: Cart, catalog: Catalog, outbox: Outbox, clock: Clock
) -> Order:
    """Places the caller's cart as a PENDING order, or answers the order this key already placed."""
    domain.validate_place_order(command)
    async with pool.acquire() as conn:
        placing, may_hold_placing = repository.placing_lock_of(command.user_id), False
        taken_out: list[str] = []
        try:
            async with conn.transaction():
                # The key stays locked until this transaction commits the order and the claim, so
                # a repeat arriving meanwhile is told to wait (ABORTED) instead of placing a
                # second order. The locks are all the transaction holds while cart and catalog answer.
                if not await repository.lock_key(conn, command.user_id, command.idempotency_key):
                    raise domain.KeyInFlight()
                claimed = await repository.claimed_key(conn, command.user_id, command.idempotency_key)
                if claimed is not None:
                    return await _replay(conn, command, claimed)
                # One placing per user at a time, from reading the cart until its lines are out of
                # it: two requests with different keys (two tabs, a client that makes a key per
                # click) would otherwise both read the same cart and place it twice. Refused rather
                # than awaited, so a burst of them cannot hold every pooled connection. Held past
                # the commit, so it is the session's lock.
                may_hold_placing = True
                locked, left_in_cart = await repository.try_lock_placing(conn, placing, command.user_id)
                if not locked:
                    may_hold_placing = False
                    raise domain.PlacingInFlight()
                await _take_out_of_cart(cart, left_in_cart, taken_out)
                quantities = await cart.quantities()
                if not quantities:
                    raise domain.EmptyCart("cart is empty")
                prices = await catalog.prices(product_id for product_id, _ in quantities)
                order = Order.place(str(uuid.uuid4()), command, domain.price_lines(quantities, prices), clock())
                await repository.add_order(conn, order)
                await repository.claim_key(
                    conn, command.user_id, command.idempotency_key, command.fingerprint, order.id
                )
                await _publish(conn, outbox, order)
            log.info("order_placed", order_id=order.id, user_id=order.user_id, total=order.total.amount)
            # The lines leave the cart before the shopper hears of the order, so the next order
            # cannot take them again. When cart does not confirm it, the user's next placing
            # takes them out first (cart also does on OrderPlaced, but that may come later).
            if (failure := await cart.remove_ordered(order.id, quantities)) is not None:
                log.warning("ordered_lines_left_in_cart", order_id=order.id, error=failure)
                await repository.remember_lines_left(conn, order.id, command.user_id, quantities)
        finally:
            try:
                if taken_out:  # whether or not this placing went through, those lines are out
                    await repository.forget_lines_left(conn, taken_out)
            finally:
                if may_hold_placing:
                    await db.unlock(conn, placing)
    return order


async def _take_out_of_cart(cart: Cart, left_in_cart: list[repository.LinesLeft], taken_out: list[str]) -> None:
    """The lines the user's earlier orders left in the cart come out before it is read again, or
    they would be ordered twice; while cart does not take them out, no order is placed."""
    for earlier in left_in_cart:
        if (failure := await cart.remove_ordered(earlier.order_id, earlier.lines)) is not None:
            log.warning("earlier_lines_still_in_cart", order_id=earlier.order_id, error=failure)
            raise DependencyUnavailable("cart")
        taken_out.append(earlier.order_id)


async def _replay(conn: asyncpg.Connection, command: PlaceOrder, claimed: repository.ClaimedKey) -> Order:
    if claimed.fingerprint != command.fingerprint:
        raise domain.KeyReused()
    order = await repository.order_of(conn, command.user_id, claimed.order_id)
    assert order is not None, "a claimed key always names the order it placed"
    return order


async def get_order(query: GetOrder, *, pool: asyncpg.Pool) -> Order:
    order = await repository.order_of(pool, query.user_id, query.order_id)
    if order is None:
        raise domain.OrderNotFound(query.order_id)
    return order


async def follow_order(query: GetOrder, *, pool: asyncpg.Pool, changes: Changes) -> AsyncIterator[Order]:
    """The caller's order now, then again at each status change, until SHIPPED or CANCELLED, or
    until this instance stops."""
    with changes.following(query.order_id) as changed:
        shown = 0
        while True:
            changed.clear()
            order = await repository.order_of(pool, query.user_id, query.order_id)
            if order is None:
                raise domain.OrderNotFound(query.order_id)
            if len(order.history) != shown:
                shown = len(order.history)
                yield order
            if order.is_final or changes.ending:  # when stopping, the caller follows again elsewhere
                return
            await changed.wait()


async def list_orders(query: ListOrders, *, pool: asyncpg.Pool) -> tuple[list[Order], int]:
    return await repository.orders_of(pool, query.user_id, page=query.page, page_size=query.page_size)


async def cancel_order(
    command: CancelOrder, *, pool: asyncpg.Pool, shipping: Shipping, outbox: Outbox, clock: Clock
) -> Order:
    """The customer's cancel. Of a confirmed order only once shipping has cancelled its parcel:
    shipping alone decides between this cancel and the carrier's dispatch. The order stays locked
    meanwhile, so its events and other cancels wait for the outcome."""
    async with pool.acquire() as conn, conn.transaction():
        order = await repository.order_for_update(conn, command.order_id)
        if order is None or order.user_id != command.user_id:
            raise domain.OrderNotFound(command.order_id)
        if order.may_have_shipment:
            await shipping.cancel_shipment(order.id)
        order.cancel(clock())
        await repository.save_order(conn, order)
        await _publish(conn, outbox, order)
    log.info("order_cancelled", order_id=order.id, reason=order.status_reason)
    return order


# ---------------------------------------------------------------- events


async def record_stock_reserved(event: Event, conn: asyncpg.Connection, *, outbox: Outbox, clock: Clock) -> None:
    await _apply(conn, event, lambda order, now: order.record_stock(reserved=True, now=now), outbox, clock)


async def record_stock_rejected(event: Event, conn: asyncpg.Connection, *, outbox: Outbox, clock: Clock) -> None:
    await _apply(conn, event, lambda order, now: order.record_stock(reserved=False, now=now), outbox, clock)


async def record_payment_authorized(event: Event, conn: asyncpg.Connection, *, outbox: Outbox, clock: Clock) -> None:
    await _apply(conn, event, lambda order, now: order.record_payment(authorized=True, now=now), outbox, clock)


async def record_payment_declined(event: Event, conn: asyncpg.Connection, *, outbox: Outbox, clock: Clock) -> None:
    await _apply(conn, event, lambda order, now: order.record_payment(authorized=False, now=now), outbox, clock)


async def mark_shipped(event: Event, conn: asyncpg.Connection, *, outbox: Outbox, clock: Clock) -> None:
    carrier, tracking_number = event.data["carrier"], event.data["tracking_number"]

    def ship(order: Order, now: datetime) -> None:
        if order.status == domain.CANCELLED:
            # Shipping cancels before orders does and refuses once dispatched: this cannot happen.
            log.error("cancelled_order_dispatched", order_id=order.id, tracking_number=tracking_number)
        order.mark_shipped(carrier, tracking_number, now)

    await _apply(conn, event, ship, outbox, clock)


async def record_shipment_cancelled(event: Event, conn: asyncpg.Connection, *, outbox: Outbox, clock: Clock) -> None:
    await _apply(conn, event, lambda order, now: order.record_shipment_cancelled(now), outbox, clock)


async def _apply(
    conn: asyncpg.Connection, event: Event, change: Callable[[Order, datetime], None], outbox: Outbox, clock: Clock
) -> None:
    order = await repository.order_for_update(conn, event.data["order_id"])
    if order is None:
        # Orders stores an order before anyone can hear of it: this is not ours, or a bug.
        # Raising lets the consumer retry and then dead-letter it where an operator sees it.
        raise domain.OrderNotFound(event.data["order_id"])
    change(order, clock())
    if order.events:
        log.info("order_advanced", order_id=order.id, status=order.status, reason=order.status_reason)
    await repository.save_order(conn, order)
    await _publish(conn, outbox, order)


async def _publish(conn: asyncpg.Connection, outbox: Outbox, order: Order) -> None:
    for event in order.events:
        # Through JSON: the contracts' schemas want lists where the domain keeps tuples.
        data = json.loads(json.dumps(asdict(event)))
        await outbox.add(conn, type(event).__name__, data, subject=order.id)
    order.events.clear()


Handler = Callable[..., Awaitable[None]]

SUBSCRIPTIONS: dict[str, Handler] = {
    "agora.inventory.StockReserved.v1": record_stock_reserved,
    "agora.inventory.StockRejected.v1": record_stock_rejected,
    "agora.payments.PaymentAuthorized.v1": record_payment_authorized,
    "agora.payments.PaymentDeclined.v1": record_payment_declined,
    "agora.shipping.ShipmentDispatched.v1": mark_shipped,
    "agora.shipping.ShipmentCancelled.v1": record_shipment_cancelled,
}
