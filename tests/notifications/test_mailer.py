"""The SMTP mailer against a real SMTP server: one session kept for many messages, replaced when
the server has dropped it, and never a failure reported for a message the server took."""

from __future__ import annotations

import asyncio
import smtplib
from datetime import UTC, datetime

import pytest

from chassis.messaging import PermanentFailure
from notifications.emails import Letter, Mail, compose
from notifications.mailer import SmtpMailer, Undeliverable
from tests.notifications.conftest import REFUSED, SmtpServer


def message(n: int, *, recipient: str = "ada@example.com") -> Mail:
    return compose(
        Letter(f"message {n}", f"body {n}\n", f"<p>body {n}</p>\n"),
        sender="no-reply@agora.example",
        recipient=recipient,
        message_id=f"<{n}@agora.example>",
        date=datetime(2026, 1, 31, 12, 0, tzinfo=UTC),
    )


async def test_messages_share_one_session_even_when_sent_at_once(smtp_server: SmtpServer) -> None:
    mailer = SmtpMailer(smtp_server.url)
    try:
        await mailer.send(message(0))
        await asyncio.gather(*(mailer.send(message(n)) for n in range(1, 6)))
    finally:
        await mailer.close()
    assert sorted(m["Subject"] for m in smtp_server.mailbox.messages) == [f"message {n}" for n in range(6)]
    assert len(set(smtp_server.mailbox.sessions)) == 1


async def test_a_session_the_server_dropped_is_replaced_and_the_message_sent_once(smtp_server: SmtpServer) -> None:
    mailer = SmtpMailer(smtp_server.url)
    try:
        await mailer.send(message(0))
        smtp_server.stop()  # a restart: the kept session is dead
        smtp_server.start()
        await mailer.send(message(1))
    finally:
        await mailer.close()
    assert [m["Subject"] for m in smtp_server.mailbox.messages] == ["message 0", "message 1"]
    assert len(set(smtp_server.mailbox.sessions)) == 2


async def test_a_server_that_is_down_fails_the_send_and_the_next_send_reconnects(smtp_server: SmtpServer) -> None:
    mailer = SmtpMailer(smtp_server.url, timeout=2)
    try:
        await mailer.send(message(0))
        smtp_server.stop()
        with pytest.raises(OSError):
            await mailer.send(message(1))
        smtp_server.start()
        await mailer.send(message(2))
    finally:
        await mailer.close()
    assert [m["Subject"] for m in smtp_server.mailbox.messages] == ["message 0", "message 2"]
    assert len(set(smtp_server.mailbox.sessions)) == 2  # a session that failed is not trusted again


async def test_a_refused_message_raises_and_the_next_one_goes_through_a_new_session(smtp_server: SmtpServer) -> None:
    mailer = SmtpMailer(smtp_server.url)
    nobody = message(1, recipient=REFUSED)
    try:
        await mailer.send(message(0))
        # A 5xx is for good: the consumer dead-letters the event instead of retrying it.
        with pytest.raises(Undeliverable, match=r"550 5\.1\.1 No such mailbox") as refused:
            await mailer.send(nobody)
        assert isinstance(refused.value, PermanentFailure)
        assert isinstance(refused.value.__cause__, smtplib.SMTPRecipientsRefused)
        await mailer.send(message(2))
    finally:
        await mailer.close()
    assert [m["Subject"] for m in smtp_server.mailbox.messages] == ["message 0", "message 2"]
    assert len(set(smtp_server.mailbox.sessions)) == 2  # a session that failed is not trusted again


async def test_an_address_that_is_not_ascii_is_sent_under_smtputf8(smtp_server: SmtpServer) -> None:
    mailer = SmtpMailer(smtp_server.url)
    try:
        await mailer.send(message(0, recipient="zoë@example.com"))
    finally:
        await mailer.close()
    assert [m["To"] for m in smtp_server.mailbox.messages] == ["zoë@example.com"]
