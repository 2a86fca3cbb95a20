"""Payments' use cases: one per order event, the event first, dependencies by keyword.

Why an order is charged at most once, whatever crashes or redeliveries happen:

1. Each handler runs in the consumer's inbox transaction and first takes the order's lock, so
   the handlers of one order never overlap: a cancel waits for an authorization in flight.
2. The provider call is not part of our transaction and cannot be: the provider commits on its
   side whatever becomes of ours, and nothing of ours (no row lock, no payment row) is held
   for it meanwhile but that order's lock. What makes the call safe to repeat is its
   idempotency key, `<order_id>:<operation>`: asked again, the provider answers with its first
   answer instead of charging, capturing or refunding again.
3. The provider's answer, the payment's new state and the outgoing event commit in one
   transaction, with the inbox claim. A crash after the provider answered and before that
   commit leaves nothing of ours behind; the event is redelivered, the handler asks again with
   the same key, gets the same charge back, and records it once.
4. An `OrderCancelled` that finds no payment leaves a tombstone, so a late `OrderPlaced`
   authorizes nothing; and it releases any hold an earlier, crashed `OrderPlaced` left at the
   provider before recording anything.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import asyncpg
from chassis.auth import Principal
from chassis.logs import get_logger

from payments.domain import Money, Operation, Payment
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
    await repository.lock_order(order["order_id"])
    if await repository.get(order["order_id"]) is not None:
        return  # decided already, or cancelled before it was placed
    payment = Payment(order["order_id"], order["user_id"], _money(order["total"]))
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
    order_id = event.data["order_id"]
    repository = Repository(conn)
    await repository.lock_order(order_id)
    payment = await repository.get(order_id)
    if payment is None:
        raise OrderNotPlacedYet(order_id)
    if payment.operation_when_confirmed() is not Operation.CAPTURE:
        return
    assert payment.charge_id is not None
    await provider.capture(order_id, payment.charge_id, Money(payment.authorized, payment.amount.currency))
    payment.mark_captured()
    await _save(payment, repository, outbox)


async def cancel_payment(
    event: OrderEvent, conn: asyncpg.Connection, *, provider: PaymentProvider, outbox: Outbox
) -> None:
    """OrderCancelled: void a hold, refund a capture, leave a decline alone."""
    order = event.data
    repository = Repository(conn)
    await repository.lock_order(order["order_id"])
    payment = await repository.get(order["order_id"])
    if payment is None:
        for charge_id in await provider.held_authorizations(order["order_id"]):
            await provider.void(order["order_id"], charge_id)
        payment = Payment.cancelled_before_placed(order["order_id"], order["user_id"], _money(order["total"]))
    else:
        operation = payment.operation_when_cancelled()
        if operation is None:
            return
        assert payment.charge_id is not None
        if operation is Operation.VOID:
            await provider.void(payment.order_id, payment.charge_id)
            payment.mark_voided()
        else:
            await provider.refund(payment.order_id, payment.charge_id, Money(payment.kept, payment.amount.currency))
            payment.mark_refunded()
    await _save(payment, repository, outbox)


async def get_payment(order_id: str, *, principal: Principal, pool: asyncpg.Pool) -> Payment:
    """The order's payment, for its customer or an admin."""
    payment = await find_payment(pool, order_id) if order_id else None
    if payment is None or not (principal.is_admin or payment.user_id == principal.user_id):
        raise PaymentNotFound(order_id)
    return payment


async def _save(payment: Payment, repository: Repository, outbox: Outbox) -> None:
    await repository.save(payment)
    for event in payment.events:
        await outbox.add(
            repository.connection, type(event).__name__, dataclasses.asdict(event), subject=payment.order_id
        )
        log.info("payment_recorded", order_id=payment.order_id, recorded=type(event).__name__)
    payment.events.clear()


def _money(data: dict[str, Any]) -> Money:
    return Money(data["amount"], data["currency"])


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
