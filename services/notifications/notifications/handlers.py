"""Notifications' use cases: one email per event, each addressed from the customers projection.

Exactly one email per event, and the one window where that cannot be promised:

1. Each handler runs in the consumer's inbox transaction. It records the email in `sent_emails`
   (keyed by event id and kind) in that transaction, hands the message to the SMTP server, and
   returns; the transaction commits after that. An SMTP failure raises and rolls the record
   back, so the event is retried (with backoff) and the email sent then.
2. A redelivered event finds the inbox claim (or the sent record) and sends nothing.
3. An order's emails tell one story: they are serialized per order, and a confirmation handled
   after the order's cancellation email (it was retried and overtaken, or another replica took
   it) is not sent, since it would contradict what the customer was already told. One handled
   after the shipping email is still sent: late, but true, and the customer's receipt.
4. The remaining window: a crash after the SMTP server accepted the message and before the
   commit. The event is redelivered and the email sent again, at least once rather than exactly
   once, because no SMTP server takes part in our transaction. The resend is byte-for-byte the
   same message with the same `Message-ID` (`<event id>.<kind>@notifications.agora`) and `Date`
   (the event's time), so a receiver that deduplicates by Message-ID, as mail stores and many
   clients do, shows it once.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from chassis.logs import get_logger
from notifications import emails, repository
from notifications.emails import Letter
from notifications.mailer import Mailer
from notifications.repository import Customer

log = get_logger(__name__)

MESSAGE_ID_DOMAIN = "notifications.agora"


class Event(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def time(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...


class RecipientUnknown(Exception):
    """The customer's UserRegistered has not been handled yet: retried until it has."""


def message_id(event_id: str, kind: str) -> str:
    return f"<{event_id}.{kind}@{MESSAGE_ID_DOMAIN}>"


async def welcome_customer(event: Event, conn: asyncpg.Connection, *, mailer: Mailer, sender: str) -> None:
    """UserRegistered: learn the customer's address and name, and welcome them."""
    user = event.data
    customer = Customer(user_id=user["user_id"], email=user["email"], name=user["name"])
    await repository.save_customer(conn, customer)
    await _send_once(
        event, conn, "welcome", customer, emails.welcome(customer.name), mailer=mailer, sender=sender, order_id=None
    )


OUTDATING = {"order_cancelled"}
"""The emails after which a confirmation would tell the customer something no longer true."""


async def email_order_confirmed(event: Event, conn: asyncpg.Connection, *, mailer: Mailer, sender: str) -> None:
    order_id = event.data["order_id"]
    await repository.lock_order(conn, order_id)
    if told := await repository.kinds_sent_for_order(conn, order_id) & OUTDATING:
        log.info("email_outdated", kind="order_confirmed", order_id=order_id, already_sent=sorted(told))
        return
    customer = await _customer(conn, event.data["user_id"])
    letter = emails.order_confirmed(customer.name, event.data)
    await _send_once(event, conn, "order_confirmed", customer, letter, mailer=mailer, sender=sender, order_id=order_id)


async def email_order_cancelled(event: Event, conn: asyncpg.Connection, *, mailer: Mailer, sender: str) -> None:
    order_id = event.data["order_id"]
    await repository.lock_order(conn, order_id)
    customer = await _customer(conn, event.data["user_id"])
    letter = emails.order_cancelled(customer.name, event.data)
    await _send_once(event, conn, "order_cancelled", customer, letter, mailer=mailer, sender=sender, order_id=order_id)


async def email_order_shipped(event: Event, conn: asyncpg.Connection, *, mailer: Mailer, sender: str) -> None:
    order_id = event.data["order_id"]
    await repository.lock_order(conn, order_id)
    customer = await _customer(conn, event.data["user_id"])
    letter = emails.order_shipped(customer.name, event.data)
    await _send_once(event, conn, "order_shipped", customer, letter, mailer=mailer, sender=sender, order_id=order_id)


async def _customer(conn: asyncpg.Connection, user_id: str) -> Customer:
    customer = await repository.find_customer(conn, user_id)
    if customer is None:
        raise RecipientUnknown(f"no email known yet for user {user_id}")
    return customer


async def _send_once(
    event: Event,
    conn: asyncpg.Connection,
    kind: str,
    customer: Customer,
    letter: Letter,
    *,
    mailer: Mailer,
    sender: str,
    order_id: str | None,
) -> None:
    mid = message_id(event.id, kind)
    claimed = await repository.record_sent(
        conn,
        event_id=event.id,
        kind=kind,
        user_id=customer.user_id,
        recipient=customer.email,
        message_id=mid,
        subject=letter.subject,
        order_id=order_id,
    )
    if not claimed:
        return
    date = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
    await mailer.send(emails.compose(letter, sender=sender, recipient=customer.email, message_id=mid, date=date))
    log.info("email_sent", kind=kind, user_id=customer.user_id, message_id=mid)


Handler = Callable[..., Awaitable[None]]

# What notifications consumes, and the email each sends.
SUBSCRIPTIONS: dict[str, Handler] = {
    "agora.identity.UserRegistered.v1": welcome_customer,
    "agora.orders.OrderConfirmed.v1": email_order_confirmed,
    "agora.orders.OrderCancelled.v1": email_order_cancelled,
    "agora.shipping.ShipmentDispatched.v1": email_order_shipped,
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
