"""The templates, without sending: money in words people read, the order's lines and total."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy

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


def test_a_composed_message_carries_the_given_identity_and_both_parts() -> None:
    message = emails.compose(
        emails.welcome("Ada"),
        sender="Agora <no-reply@agora.example>",
        recipient="ada@example.com",
        message_id="<e-1.welcome@notifications.agora>",
        date=datetime(2026, 1, 31, 12, 0, tzinfo=UTC),
    )
    assert message["Message-ID"] == "<e-1.welcome@notifications.agora>"
    assert message["Date"] == "Sat, 31 Jan 2026 12:00:00 +0000"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]


def test_keeping_the_header_classes_changes_no_byte_of_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resend must stay byte-for-byte the message sent before, whichever way it was composed."""
    order = {"order_id": "o-1", "items": ITEMS, "total": TOTAL, "shipping_address": ADDRESS}
    arguments = {
        "sender": "Agora <no-reply@agora.example>",
        "recipient": "zoë@example.com",
        "message_id": "<e-1.order_confirmed@notifications.agora>",
        "date": datetime(2026, 1, 31, 12, 0, tzinfo=UTC),
    }
    letter = emails.order_confirmed("Zoë Ça", order)
    composed = emails.compose(letter, **arguments).as_bytes()
    monkeypatch.setattr(emails, "_POLICY", policy.default)
    assert emails.compose(letter, **arguments).as_bytes() == composed
