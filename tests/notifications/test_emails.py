"""The templates, without sending: money in words people read, the order's lines and total."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from notifications import emails
from tests.notifications.conftest import ADDRESS, ITEMS, TOTAL


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (4499, "USD", "44.99 USD"),
        (5, "EUR", "0.05 EUR"),
        (123456789, "GBP", "1,234,567.89 GBP"),
        (1500, "JPY", "1,500 JPY"),
        (1234, "KWD", "1.234 KWD"),
        (0, "USD", "0.00 USD"),
    ],
)
def test_money_is_formatted_from_minor_units(amount: int, currency: str, expected: str) -> None:
    assert emails.format_money({"amount": amount, "currency": currency}) == expected


def test_the_confirmation_lists_each_line_its_total_and_the_address() -> None:
    order = {"order_id": "o-1", "user_id": "u-1", "items": ITEMS, "total": TOTAL, "shipping_address": ADDRESS}
    letter = emails.order_confirmed("Ada", order)

    assert letter.subject == "Your Agora order is confirmed (44.99 USD)"
    assert letter.text.startswith("Hello Ada,\n")
    assert "  2 x Espresso cup  @ 12.50 USD  25.00 USD\n" in letter.text
    assert "  1 x Milk jug      @ 19.99 USD  19.99 USD\n" in letter.text
    assert "                          Total  44.99 USD\n" in letter.text
    assert "It ships to:\n  Ada Lovelace\n  12 St James's Square\n  London SW1Y 4JH\n  GB\n" in letter.text
    assert "2 &times; Espresso cup" in letter.html and "44.99 USD" in letter.html


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("out_of_stock", "some of the items were out of stock"),
        ("payment_declined", "your payment was declined"),
        ("customer_request", "you asked us to cancel it"),
    ],
)
def test_a_cancellation_gives_the_reason_in_words(reason: str, words: str) -> None:
    order = {"order_id": "o-1", "user_id": "u-1", "items": ITEMS, "total": TOTAL, "reason": reason}
    letter = emails.order_cancelled("Ada", order)
    assert f"We have cancelled your order o-1 because {words}" in letter.text
    assert reason not in letter.text


def test_the_shipping_email_names_the_carrier_and_tracking_number() -> None:
    letter = emails.order_shipped("Ada", {"order_id": "o-1", "carrier": "parcelfast", "tracking_number": "PF000010429"})
    assert "Carrier: parcelfast\nTracking number: PF000010429" in letter.text
    assert "PF000010429" in letter.subject


def test_names_are_escaped_in_the_html_part() -> None:
    letter = emails.welcome("<script>alert(1)</script>")
    assert "<script>" not in letter.html
    assert "&lt;script&gt;" in letter.html
    assert "Hello <script>alert(1)</script>," in letter.text


def received(mail: emails.Mail) -> EmailMessage:
    """The message as a mail client reads it."""
    message = message_from_bytes(mail.data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_a_composed_message_carries_the_given_identity_and_both_parts() -> None:
    message = received(
        emails.compose(
            emails.welcome("Ada"),
            sender="Agora <no-reply@agora.example>",
            recipient="ada@example.com",
            message_id="<e-1.welcome@notifications.agora>",
            date=datetime(2026, 1, 31, 12, 0, tzinfo=UTC),
        )
    )
    assert message["Message-ID"] == "<e-1.welcome@notifications.agora>"
    assert message["Date"] == "Sat, 31 Jan 2026 12:00:00 +0000"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]


ORDER = {"order_id": "o-1", "items": ITEMS, "total": TOTAL, "shipping_address": ADDRESS}
IDENTITY: dict[str, Any] = {
    "sender": "Agorà Boutique <no-reply@agora.example>",
    "recipient": "zoe@example.com",
    "message_id": "<e-1.order_confirmed@notifications.agora>",
    "date": datetime(2026, 1, 31, 12, 0, tzinfo=UTC),
}


@pytest.mark.parametrize(
    "subject",
    [
        "Your Agora order is confirmed (44.99 USD)",
        "Votre commande Agora est confirmée — 44,99 € (Zoë Ça)",
        "Your Agora order has shipped (tracking PF000010429), and this subject runs well past one line of"
        " seventy-eight characters",
        "Votre commande Agora a été expédiée (suivi PF000010429) : elle arrivera chez Zoë Ça d'ici trois"
        " à cinq jours ouvrés",
        "Tracking " + "PF000010429" * 9,
        "  =?utf-8?q?not_an_encoded_word?=  kept as typed, spaces and all, however long the subject is  ",
    ],
)
def test_the_wire_format_is_plain_then_html_in_utf8_with_every_header_a_client_reads(subject: str) -> None:
    letter = dataclasses.replace(emails.order_confirmed("Zoë Ça", ORDER), subject=subject)
    mail = emails.compose(letter, **IDENTITY)

    assert (mail.sender, mail.recipient) == ("no-reply@agora.example", "zoe@example.com")
    assert mail.data.isascii()  # 7-bit clean: no server needs 8BITMIME for it
    head, _, _ = mail.data.partition(b"\r\n\r\n")
    assert all(len(line) <= 78 for line in head.split(b"\r\n")), head  # so a long subject is folded
    assert b"\n" not in mail.data.replace(b"\r\n", b"")  # every line ends CRLF, as SMTP wants

    message = received(mail)
    assert message.defects == []
    assert message["From"].addresses[0].display_name == "Agorà Boutique"
    assert message["From"].addresses[0].addr_spec == "no-reply@agora.example"
    assert message["To"] == "zoe@example.com"
    assert message["Subject"] == subject
    assert message["Message-ID"] == "<e-1.order_confirmed@notifications.agora>"
    assert message["Date"] == "Sat, 31 Jan 2026 12:00:00 +0000"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    plain, rich = message.iter_parts()
    assert [part.get_content_type() for part in (plain, rich)] == ["text/plain", "text/html"]
    assert [part.get_content_charset() for part in (plain, rich)] == ["utf-8", "utf-8"]
    assert plain.get_content().replace("\r\n", "\n") == letter.text
    assert rich.get_content().replace("\r\n", "\n") == letter.html
    assert message.get_body(("plain",)) is plain


def test_a_resend_is_byte_for_byte_the_same_message() -> None:
    letter = emails.order_confirmed("Zoë Ça", ORDER)
    assert emails.compose(letter, **IDENTITY) == emails.compose(letter, **IDENTITY)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Your order\r\nBcc: everyone@example.com"),
        ("subject", "Your order\nBcc: everyone@example.com"),
        ("recipient", "zoe@example.com\r\nBcc: everyone@example.com"),
        ("sender", "Agora\r\nBcc: everyone@example.com <no-reply@agora.example>"),
        ("message_id", "<e-1@notifications.agora>\rBcc: everyone@example.com"),
    ],
)
def test_a_line_break_in_a_header_is_refused_rather_than_starting_a_header(field: str, value: str) -> None:
    letter = emails.welcome("Zoë")
    if field == "subject":
        letter, arguments = dataclasses.replace(letter, subject=value), IDENTITY
    else:
        arguments = {**IDENTITY, field: value}
    with pytest.raises(ValueError, match="line break"):
        emails.compose(letter, **arguments)
