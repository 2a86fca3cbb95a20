"""Payments' use cases: one per order event, the event first, dependencies by keyword.

Why an order is charged at most once, and a cancelled one keeps no money, whatever crashes or
redeliveries happen:

1. Each handler runs in the consumer's inbox transaction and first takes the order's lock, so
   the handlers of one order never overlap: a cancel waits for an authorization in flight.
2. The provider call is not part of our transaction and cannot be: the provider commits on its
   side whatever becomes of ours, and nothing of ours (no row lock, no payment row) is held for
   it meanwhile but that order's lock. What makes the call safe to repeat is its idempotency key,
   `<order_id>:<operation>`: asked again, the provider answers with its first answer instead of
   charging, capturing or refunding again.
3. The provider's answer, the payment's new state and the outgoing events commit in one
   transaction, with the inbox claim. A crash after the provider answered and before that
   commit leaves nothing of ours behind; the event comes back, and the handler asks again with
   the same key and gets the same charge back.
4. Before deciding anything, a handler catches up with the provider's charge for the order: if
   an earlier attempt crashed after the provider acted, the payment adopts what the provider did
   (and records the events that attempt would have). So a cancel arriving after a crashed
   capture refunds instead of trying to void, and a cancel after a crashed authorization
   releases the hold it left. The key stays the guarantee against a second charge: a real
   provider's search can lag behind its writes.
5. An `OrderCancelled` that finds nothing authorized leaves a tombstone, so a late
   `OrderPlaced` authorizes nothing.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import asyncpg

from chassis.auth import Principal
from chassis.logs import get_logger
from payments.domain import Money, Operation, Payment, Status
from payments.provider import Authorized, PaymentProvider
from payments.repository import Repository, find_payment

log = get_logger(__name__)


class Outbox(Protocol):
    async def add(self, conn: Any, name: str, data: dict[str, Any], *, subject: str | None = None) -> Any: ...


class OrderEvent(Protocol):
    @property
    def data(self) -> dict[str, Any]: ...


class PaymentNotFound(Exception):
    """No payment for the order, or not one the caller may see (existence is not revealed)."""


class OrderNotPlacedYet(Exception):
    """An `OrderConfirmed` before payments recorded the authorization it follows from; retried."""


async def authorize_payment(
    event: OrderEvent, conn: asyncpg.Connection, *, provider: PaymentProvider, outbox: Outbox
) -> None:
    """OrderPlaced: authorize the total with the order's token (which is never logged)."""
    order = event.data
    repository = Repository(conn)
    payment = await _current_payment(order, repository, provider) or _new_payment(order)
    if payment.place() is Operation.AUTHORIZE:
        result = await provider.authorize(payment.order_id, payment.amount, order["payment_token"])
        if isinstance(result, Authorized):
            payment.mark_authorized(result.charge_id)
        else:
            payment.mark_declined(result.reason)
    await _save(payment, repository, outbox)


async def capture_payment(
    event: OrderEvent, conn: asyncpg.Connection, *, provider: PaymentProvider, outbox: Outbox
) -> None:
    """OrderConfirmed: capture what was authorized, once."""
    repository = Repository(conn)
    payment = await _current_payment(event.data, repository, provider)
    if payment is None:
        raise OrderNotPlacedYet(event.data["order_id"])
    if payment.confirm() is Operation.CAPTURE:
        assert payment.charge_id is not None
        await provider.capture(payment.order_id, payment.charge_id, _money(payment, payment.authorized))
        payment.mark_captured()
    await _save(payment, repository, outbox)


async def cancel_payment(
    event: OrderEvent, conn: asyncpg.Connection, *, provider: PaymentProvider, outbox: Outbox
) -> None:
    """OrderCancelled: void a hold, refund a capture, leave a decline alone."""
    repository = Repository(conn)
    payment = await _current_payment(event.data, repository, provider) or _new_payment(event.data)
    operation = payment.cancel()
    if operation is Operation.VOID:
        assert payment.charge_id is not None
        await provider.void(payment.order_id, payment.charge_id)
        payment.mark_voided()
    elif operation is Operation.REFUND:
        assert payment.charge_id is not None
        await provider.refund(payment.order_id, payment.charge_id, _money(payment, payment.kept))
        payment.mark_refunded()
    await _save(payment, repository, outbox)


async def get_payment(order_id: str, *, principal: Principal, pool: asyncpg.Pool) -> Payment:
    """The order's payment, for its customer or an admin."""
    payment = await find_payment(pool, order_id) if order_id else None
    if payment is None or not (principal.is_admin or payment.user_id == principal.user_id):
        raise PaymentNotFound(order_id)
    return payment


async def _current_payment(order: dict[str, Any], repository: Repository, provider: PaymentProvider) -> Payment | None:
    """The order's payment, locked for this transaction and caught up with the provider."""
    await repository.lock_order(order["order_id"])
    payment = await repository.get(order["order_id"])
    charge = await provider.charge_of(order["order_id"])
    if charge is not None:
        payment = payment or _new_payment(order)
        payment.catch_up(charge)
    return payment


def _new_payment(order: dict[str, Any]) -> Payment:
    return Payment(order["order_id"], order["user_id"], Money(order["total"]["amount"], order["total"]["currency"]))


def _money(payment: Payment, amount: int) -> Money:
    return Money(amount, payment.amount.currency)


async def _save(payment: Payment, repository: Repository, outbox: Outbox) -> None:
    if not payment.events and (payment.version or payment.status is Status.PENDING):
        return  # nothing new to record
    await repository.save(payment)
    for event in payment.events:
        await outbox.add(
            repository.connection, type(event).__name__, dataclasses.asdict(event), subject=payment.order_id
        )
        log.info("payment_recorded", order_id=payment.order_id, recorded=type(event).__name__)
    payment.events.clear()


Handler = Callable[..., Awaitable[None]]

# What payments consumes, and what it does with each.
SUBSCRIPTIONS: dict[str, Handler] = {
    "agora.orders.OrderPlaced.v1": authorize_payment,
    "agora.orders.OrderConfirmed.v1": capture_payment,
    "agora.orders.OrderCancelled.v1": cancel_payment,
}


def subscriptions(**dependencies: Any) -> dict[str, Callable[[Any, Any], Awaitable[None]]]:
    """The table above, each handler bound to its dependencies."""
    return {event_type: functools.partial(handler, **dependencies) for event_type, handler in SUBSCRIPTIONS.items()}
