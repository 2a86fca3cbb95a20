"""The SMTP mailer against a real SMTP server: one session kept for many messages, replaced when
the server has dropped it, and never a failure reported for a message the server took."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

import pytest

from notifications.mailer import SmtpMailer
from tests.notifications.conftest import SmtpServer


def message(n: int) -> EmailMessage:
    letter = EmailMessage()
    letter["From"] = "no-reply@agora.example"
    letter["To"] = "ada@example.com"
    letter["Subject"] = f"message {n}"
    letter.set_content(f"body {n}")
    return letter


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
    nobody = message(1)
    del nobody["To"]
    try:
        await mailer.send(message(0))
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            await mailer.send(nobody)
        await mailer.send(message(2))
    finally:
        await mailer.close()
    assert [m["Subject"] for m in smtp_server.mailbox.messages] == ["message 0", "message 2"]
    assert len(set(smtp_server.mailbox.sessions)) == 2  # a session that failed is not trusted again
