"""Shipping's use cases: one per order event, plus the dispatch of a due shipment.

Why a shipment is dispatched at most once and never after a cancel, whatever crashes:

1. The decision between dispatch and cancel is one row's status, changed only by conditional
   updates `... WHERE status = 'created'`. The dispatcher claims a due row with `FOR UPDATE SKIP
   LOCKED` and holds it while the carrier dispatches; a cancel's `UPDATE` waits for that commit
   and then finds the row `dispatched`, or it locks the row first and the dispatcher skips it
   and later finds it `cancelled`. Whichever commits first wins; the other changes nothing.
2. Every carrier request is safe to repeat (see `shipping.carrier`). A crash after the carrier
   dispatched and before our commit leaves the row `created`: the next claim asks again and gets
   the same tracking number. If a cancel gets the row first, the carrier refuses (the parcel has
   left) and the cancel records the dispatch instead: the carrier's word is the physical truth.
   Likewise a crash (or a cut deadline) after the carrier cancelled and before our commit: the
   dispatcher finds the consignment cancelled and records the cancel, and orders, hearing
   `ShipmentCancelled`, cancels the order the customer asked to cancel.
3. A cancel (orders' CancelShipment, or an `OrderCancelled`) before the `OrderConfirmed` leaves a
   tombstone row, so no shipment is ever created for the order; it also cancels any booking a
   crashed creation left at the carrier. A customer's cancel of a confirmed order asks
   CancelShipment first and goes ahead only if shipping cancelled, so orders never cancels an
   order whose parcel left. Every cancel orders asks for is announced (`ShipmentCancelled`), a
   tombstone's too, so an order whose own cancel was lost after shipping's commit still follows.
4. The new state and its event commit together (outbox), with the inbox claim for handlers.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol

import asyncpg
from opentelemetry import propagate, trace

from chassis import tracing
from chassis.auth import Principal
from chassis.logs import get_logger
from chassis.request_id import EVENT_HEADER, current_request_id, serving
from shipping import repository
from shipping.carrier import AlreadyDispatched, CarrierAdapter, CarrierRefused, ConsignmentCancelled
from shipping.repository import Shipment

log = get_logger(__name__)

RETRY_LATEST = timedelta(minutes=5)


class Outbox(Protocol):
    async def add(self, conn: Any, name: str, data: dict[str, Any], *, subject: str | None = None) -> Any: ...


class OrderEvent(Protocol):
    @property
    def data(self) -> dict[str, Any]: ...


class ShipmentNotFound(Exception):
    """No shipment for the order, or not one the caller may see (existence is not revealed)."""


class ShipmentAlreadyDispatched(Exception):
    """A cancel came after the dispatch: the parcel has left."""


async def create_shipment(
    event: OrderEvent, conn: asyncpg.Connection, *, carrier: CarrierAdapter, outbox: Outbox, dispatch_delay: timedelta
) -> None:
    """OrderConfirmed: book the parcel with the carrier; it leaves after `dispatch_delay`."""
    order = event.data
    order_id = order["order_id"]
    await repository.lock_order(conn, order_id)
    if await repository.get(conn, order_id) is not None:
        return  # created already, or cancelled before it was confirmed
    consignment = await carrier.book(order_id, order["shipping_address"])
    if consignment.status == "cancelled":
        # Only a customer's cancel of the confirmed order cancels its booking (an orphan a crashed
        # creation left). That cancel reached the carrier, but its tombstone was lost with its
        # transaction: written now, and announced, so orders cancels the order if its own cancel
        # was lost too.
        await repository.add_tombstone(conn, order_id, order["user_id"])
        await _announce_cancel(conn, outbox, order_id)
        return
    if consignment.status != "created":
        raise CarrierRefused("--", f"booking of order {order_id} is {consignment.status}")
    created_in: dict[str, str] = {}
    propagate.inject(created_in)
    if (request_id := current_request_id.get()) is not None:
        created_in[EVENT_HEADER] = request_id
    await repository.add(
        conn, order_id, order["user_id"], carrier=carrier.name, consignment_no=consignment.number,
        delay=dispatch_delay, trace=created_in,
    )
    await outbox.add(
        conn,
        "ShipmentCreated",
        {"order_id": order_id, "user_id": order["user_id"], "carrier": carrier.name},
        subject=order_id,
    )
    log.info("shipment_created", order_id=order_id)


async def cancel_shipment(
    event: OrderEvent, conn: asyncpg.Connection, *, carrier: CarrierAdapter, outbox: Outbox
) -> None:
    """OrderCancelled: cancel a shipment not yet dispatched; a dispatched one stays dispatched."""
    order = event.data
    await _cancel(conn, order["order_id"], order["user_id"], carrier=carrier, outbox=outbox)


async def cancel_before_dispatch(
    order_id: str, *, principal: Principal, pool: asyncpg.Pool, carrier: CarrierAdapter, outbox: Outbox
) -> Shipment:
    """CancelShipment, asked by orders before it cancels a confirmed order for its customer: here,
    not in orders, the cancel and the dispatch meet on one row, so exactly one of them wins.
    Raises ShipmentAlreadyDispatched when the dispatch did; safe to repeat."""
    async with pool.acquire() as conn, conn.transaction():
        shipment = await _cancel(
            conn, order_id, principal.user_id, carrier=carrier, outbox=outbox, announce_tombstone=True
        )
    if shipment.status == "dispatched":
        raise ShipmentAlreadyDispatched(order_id)
    return shipment


async def _cancel(
    conn: asyncpg.Connection,
    order_id: str,
    user_id: str,
    *,
    carrier: CarrierAdapter,
    outbox: Outbox,
    announce_tombstone: bool = False,
) -> Shipment:
    """Cancels the order's shipment unless it left first; the shipment as it ends up.

    `announce_tombstone` when orders asks, for its customer, before it has heard of a shipment:
    the tombstone is announced like any cancel, since orders may lose its own commit after this
    one (a crash, a cut deadline) and the order, confirmed, would then never ship nor be cancelled.
    An `OrderCancelled` needs no announcement: the order is cancelled already."""
    await repository.lock_order(conn, order_id)
    shipment = await repository.cancel(conn, order_id)
    if shipment is None:
        existing = await repository.get(conn, order_id)
        if existing is not None:
            return existing  # dispatched or cancelled first
        await _cancel_orphan_booking(order_id, carrier)
        tombstone = await repository.add_tombstone(conn, order_id, user_id)
        if announce_tombstone:
            await _announce_cancel(conn, outbox, order_id)
        return tombstone
    assert shipment.consignment_no is not None
    try:
        await carrier.cancel(shipment.consignment_no)
    except AlreadyDispatched:
        booking = await carrier.find_booking(order_id)
        assert booking is not None and booking.tracking_number is not None
        dispatched = await repository.record_dispatch_instead_of_cancel(conn, order_id, booking.tracking_number)
        await _publish_dispatched(conn, outbox, shipment, booking.tracking_number)
        log.warning("shipment_dispatched_before_cancel", order_id=order_id)
        return dispatched
    await _announce_cancel(conn, outbox, order_id)
    log.info("shipment_cancelled", order_id=order_id)
    return shipment


async def _cancel_orphan_booking(order_id: str, carrier: CarrierAdapter) -> None:
    booking = await carrier.find_booking(order_id)
    if booking is not None and booking.status == "created":
        await carrier.cancel(booking.number)


async def dispatch_next(pool: asyncpg.Pool, *, carrier: CarrierAdapter, outbox: Outbox) -> bool:
    """Dispatches one due shipment; False when none is due. Safe to run in many places at once."""
    async with pool.acquire() as conn, conn.transaction():
        shipment = await repository.claim_due(conn)
        if shipment is None:
            return False
        # The poll that found it due has no trace: the dispatch continues the checkout's, and
        # serves its request.
        request_id = shipment.trace.get(EVENT_HEADER)
        with (
            serving(request_id),
            tracing.tracer().start_as_current_span("dispatch", context=propagate.extract(shipment.trace)) as span,
        ):
            dispatched = await _dispatch(conn, shipment, carrier=carrier, outbox=outbox)
    if dispatched:
        with serving(request_id), trace.use_span(span):
            log.info("shipment_dispatched", order_id=shipment.order_id)
    return True


async def _dispatch(conn: asyncpg.Connection, shipment: Shipment, *, carrier: CarrierAdapter, outbox: Outbox) -> bool:
    """Asks the carrier to take the claimed parcel; False if it was cancelled or must wait."""
    assert shipment.consignment_no is not None
    try:
        consignment = await carrier.dispatch(shipment.consignment_no)
        if consignment.tracking_number is None:
            raise CarrierRefused("--", f"consignment {consignment.number} is {consignment.status}")
    except ConsignmentCancelled:
        await repository.cancel(conn, shipment.order_id)
        await _announce_cancel(conn, outbox, shipment.order_id)
        log.warning("shipment_cancelled_at_the_carrier", order_id=shipment.order_id)
        return False
    except Exception as error:  # the carrier is another system: whatever it does, try later
        await repository.postpone(conn, shipment.order_id, latest=RETRY_LATEST)
        log.warning("shipment_dispatch_failed", order_id=shipment.order_id, error=str(error) or type(error).__name__)
        return False
    await repository.mark_dispatched(conn, shipment.order_id, consignment.tracking_number)
    await _publish_dispatched(conn, outbox, shipment, consignment.tracking_number)
    return True


async def _announce_cancel(conn: asyncpg.Connection, outbox: Outbox, order_id: str) -> None:
    await outbox.add(conn, "ShipmentCancelled", {"order_id": order_id}, subject=order_id)


async def _publish_dispatched(conn: asyncpg.Connection, outbox: Outbox, shipment: Shipment, tracking: str) -> None:
    data = {
        "order_id": shipment.order_id,
        "user_id": shipment.user_id,
        "carrier": shipment.carrier,
        "tracking_number": tracking,
    }
    await outbox.add(conn, "ShipmentDispatched", data, subject=shipment.order_id)


async def get_shipment(order_id: str, *, principal: Principal, pool: asyncpg.Pool) -> Shipment:
    """The order's shipment, for its customer or an admin."""
    shipment = await repository.get(pool, order_id) if order_id else None
    if shipment is None or shipment.is_tombstone or not (principal.is_admin or shipment.user_id == principal.user_id):
        raise ShipmentNotFound(order_id)
    return shipment


Handler = Callable[..., Awaitable[None]]

# What shipping consumes, and what it does with each.
SUBSCRIPTIONS: dict[str, Handler] = {
    "agora.orders.OrderConfirmed.v1": create_shipment,
    "agora.orders.OrderCancelled.v1": cancel_shipment,
}


def subscriptions(**dependencies: Any) -> dict[str, Callable[[Any, Any], Awaitable[None]]]:
    """The table above, each handler bound to the dependencies it takes."""
    return {
        event_type: functools.partial(
            handler,
            **{name: value for name, value in dependencies.items() if name in inspect.signature(handler).parameters},
        )
        for event_type, handler in SUBSCRIPTIONS.items()
    }
