"""Notifications reacting to events, sending through a real SMTP server: exactly the expected
emails, once each, whatever is redelivered."""

from __future__ import annotations

import asyncio

import pytest

from notifications.emails import Mail
from notifications.handlers import RecipientUnknown, message_id
from tests.notifications.conftest import (
    Notifications,
    SmtpServer,
    new_id,
    order_cancelled,
    order_confirmed,
    shipment_dispatched,
    text_of,
    user_registered,
)


class Crash(Exception):
    """The process dying after the SMTP server took the message, before the commit."""


class CrashAfterSending:
    def __init__(self, mailer: object):
        self._mailer = mailer

    async def send(self, mail: Mail) -> None:
        await self._mailer.send(mail)  # type: ignore[attr-defined]
        raise Crash


class BrokenSmtp:
    async def send(self, mail: Mail) -> None:
        raise ConnectionRefusedError("smtp server down")


async def test_a_new_customer_gets_one_welcome_email(notifications: Notifications, smtp_server: SmtpServer) -> None:
    event = user_registered(new_id(), email="ada@example.com", name="Ada Lovelace")
    await notifications.deliver(event)

    [message] = smtp_server.mailbox.messages
    assert (message["To"], message["Subject"]) == ("ada@example.com", "Welcome to Agora")
    assert message["Message-ID"] == message_id(event.id, "welcome")
    assert text_of(message).startswith("Hello Ada Lovelace,")


async def test_every_order_email_goes_to_the_customer_once(
    notifications: Notifications, smtp_server: SmtpServer
) -> None:
    user, order = new_id(), new_id()
    events = [
        user_registered(user, email="ada@example.com"),
        order_confirmed(order, user),
        shipment_dispatched(order, user),
        order_cancelled(new_id(), user, reason="payment_declined"),
    ]
    for event in events:
        await notifications.deliver(event)
    for event in events:  # the broker redelivers everything
        assert await notifications.deliver(event) is False

    subjects = [message["Subject"] for message in smtp_server.mailbox.to("ada@example.com")]
    assert subjects == [
        "Welcome to Agora",
        "Your Agora order is confirmed (44.99 USD)",
        "Your Agora order has shipped (tracking PF000010429)",
        "Your Agora order was cancelled",
    ]
    confirmed, shipped, cancelled = smtp_server.mailbox.messages[1:]
    assert "2 x Espresso cup" in text_of(confirmed) and "Total  44.99 USD" in text_of(confirmed)
    assert "Carrier: parcelfast\nTracking number: PF000010429" in text_of(shipped)
    assert "because your payment was declined" in text_of(cancelled)
    assert len(await notifications.sent_log()) == 4


async def test_an_order_email_before_the_registration_is_retried_until_the_address_is_known(
    notifications: Notifications, smtp_server: SmtpServer
) -> None:
    user, order = new_id(), new_id()
    confirmed = order_confirmed(order, user)
    with pytest.raises(RecipientUnknown):
        await notifications.deliver(confirmed)
    assert smtp_server.mailbox.messages == []

    await notifications.deliver(user_registered(user, email="late@example.com"))
    assert await notifications.deliver(confirmed) is True  # the retry: nothing was claimed before

    assert [m["Subject"] for m in smtp_server.mailbox.to("late@example.com")] == [
        "Welcome to Agora",
        "Your Agora order is confirmed (44.99 USD)",
    ]


async def test_an_smtp_failure_sends_on_the_retry(notifications: Notifications, smtp_server: SmtpServer) -> None:
    event = user_registered(new_id())
    with pytest.raises(ConnectionRefusedError):
        await notifications.deliver(event, mailer=BrokenSmtp())
    assert await notifications.sent_log() == []

    await notifications.deliver(event)

    assert len(smtp_server.mailbox.messages) == 1
    assert await notifications.sent_log() == [(event.id, "welcome")]


async def test_a_crash_after_sending_resends_the_same_message(
    notifications: Notifications, smtp_server: SmtpServer
) -> None:
    """The at-least-once window: the resend is recognisably the same message."""
    event = user_registered(new_id())
    with pytest.raises(Crash):
        await notifications.deliver(event, mailer=CrashAfterSending(notifications.mailer))
    await notifications.deliver(event)
    await notifications.deliver(event)

    first, resent = smtp_server.mailbox.messages
    assert first["Message-ID"] == resent["Message-ID"] == message_id(event.id, "welcome")
    assert first.as_bytes() == resent.as_bytes()
    assert await notifications.sent_log() == [(event.id, "welcome")]


async def test_a_changed_address_is_used_for_later_emails(
    notifications: Notifications, smtp_server: SmtpServer
) -> None:
    user = new_id()
    await notifications.deliver(user_registered(user, email="old@example.com"))
    await notifications.deliver(user_registered(user, email="new@example.com"))
    await notifications.deliver(shipment_dispatched(new_id(), user))

    assert [m["To"] for m in smtp_server.mailbox.messages] == ["old@example.com", "new@example.com", "new@example.com"]


async def test_a_confirmation_overtaken_by_the_cancellation_is_not_sent_and_one_overtaken_by_the_dispatch_is(
    notifications: Notifications, smtp_server: SmtpServer
) -> None:
    """A confirmation that failed once and came back after the order's cancellation email would end
    the customer's story with "it is confirmed" after "we have cancelled it". After the shipping
    email it is only late, and it is the customer's receipt of lines and total."""
    user, cancelled_order, shipped_order = new_id(), new_id(), new_id()
    await notifications.deliver(user_registered(user, email="ada@example.com"))
    await notifications.deliver(order_cancelled(cancelled_order, user))
    assert await notifications.deliver(order_confirmed(cancelled_order, user)) is True  # handled, and nothing sent
    await notifications.deliver(shipment_dispatched(shipped_order, user))
    await notifications.deliver(order_confirmed(shipped_order, user))

    subjects = [message["Subject"] for message in smtp_server.mailbox.to("ada@example.com")]
    assert subjects == [
        "Welcome to Agora",
        "Your Agora order was cancelled",
        "Your Agora order has shipped (tracking PF000010429)",
        "Your Agora order is confirmed (44.99 USD)",
    ]


async def test_emails_of_one_order_handled_at_once_by_two_replicas_never_confirm_after_cancelling(
    notifications: Notifications, smtp_server: SmtpServer
) -> None:
    """Two replicas may take an order's confirmation and its cancellation at the same moment:
    the emails of one order are serialized in the database, so the later one sees the first."""
    orders = []
    for number in range(12):
        user, order = new_id(), new_id()
        await notifications.deliver(user_registered(user, email=f"shopper{number}@example.com"))
        # The cancellation first: without the serialization it is the one most often sent first.
        orders.append((f"shopper{number}@example.com", order_cancelled(order, user), order_confirmed(order, user)))

    await asyncio.gather(*(notifications.deliver(event) for _, *events in orders for event in events))

    for address, _, _ in orders:
        subjects = [message["Subject"] for message in smtp_server.mailbox.to(address)][1:]
        assert subjects in (
            ["Your Agora order is confirmed (44.99 USD)", "Your Agora order was cancelled"],
            ["Your Agora order was cancelled"],
        ), subjects
