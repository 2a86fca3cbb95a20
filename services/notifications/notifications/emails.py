"""What each email says: plain text first (readable in any client), with an HTML alternative.

Pure functions of the event's data and the customer; nothing here sends or reads anything.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import html
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any

# ISO 4217 minor-unit exponents that are not 2.
_EXPONENTS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}
REASONS = {
    "out_of_stock": "some of the items were out of stock, so we could not set them aside for you",
    "payment_declined": "your payment was declined",
    "customer_request": "you asked us to cancel it",
}
SIGNATURE = "The Agora team"
# RFC 2047 caps an encoded word at 75 characters: 76 with the space that folds a line before it.
_LINE = 76


@dataclass(frozen=True)
class Letter:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Mail:
    """One message as an SMTP server takes it: the envelope's two addresses and the message."""

    sender: str
    recipient: str
    data: bytes


def format_money(money: dict[str, Any]) -> str:
    """`{"amount": 123450, "currency": "USD"}` (minor units) as `1,234.50 USD`."""
    exponent = _EXPONENTS.get(money["currency"], 2)
    return f"{Decimal(money['amount']).scaleb(-exponent):,.{exponent}f} {money['currency']}"


def welcome(name: str) -> Letter:
    paragraphs = [
        f"Hello {name},",
        "Welcome to Agora! Your account is ready: browse the catalogue, fill your cart and check out"
        " whenever you like.",
        "We will email you when an order is confirmed, when it ships, and if it is ever cancelled.",
    ]
    return _letter("Welcome to Agora", paragraphs)


def order_confirmed(name: str, order: dict[str, Any]) -> Letter:
    address = order["shipping_address"]
    address_lines = [
        address["name"],
        address["line1"],
        address.get("line2") or "",
        f"{address['city']} {address['postal_code']}",
        address["country"],
    ]
    opening = [
        f"Hello {name},",
        f"Thank you for your order {order['order_id']}. It is confirmed, and we will ship it shortly.",
    ]
    closing = ["It ships to:\n" + "\n".join(f"  {line}" for line in address_lines if line), SIGNATURE]
    text = _join([*opening, _lines_text(order), *closing])
    body = _join_html(opening) + _lines_html(order) + _join_html(closing)
    return Letter(f"Your Agora order is confirmed ({format_money(order['total'])})", text, _page(body))


def order_cancelled(name: str, order: dict[str, Any]) -> Letter:
    reason = REASONS.get(order["reason"], "it could not be completed")
    paragraphs = [
        f"Hello {name},",
        f"We have cancelled your order {order['order_id']} because {reason}.",
        "You will not be charged for it: any hold on your card is released, and anything already"
        " charged is refunded in full.",
    ]
    text = _join([*paragraphs, _lines_text(order), SIGNATURE])
    body = _join_html(paragraphs) + _lines_html(order) + _join_html([SIGNATURE])
    return Letter("Your Agora order was cancelled", text, _page(body))


def order_shipped(name: str, shipment: dict[str, Any]) -> Letter:
    paragraphs = [
        f"Hello {name},",
        f"Good news: your order {shipment['order_id']} is on its way.",
        f"Carrier: {shipment['carrier']}\nTracking number: {shipment['tracking_number']}",
    ]
    return _letter(f"Your Agora order has shipped (tracking {shipment['tracking_number']})", paragraphs)


def compose(letter: Letter, *, sender: str, recipient: str, message_id: str, date: datetime) -> Mail:
    """The message on the wire. Nothing in it is random (`message_id` and `date` come from the
    event, the MIME boundary from `message_id`), so a resend of the same email is the same
    message, which receivers can recognise and drop.

    Written straight to bytes: building an `email.message.EmailMessage` and flattening it parsed,
    re-rendered and refolded every header on the way, some fifty times the CPU this takes.
    Raises `ValueError` for a line break in any header's value."""
    from_header, address = _sender(sender)
    # No quoted-printable body can hold "=_" (its "=" always starts an escape or a soft break),
    # so no body can ever hold this boundary.
    boundary = "=_agora_" + hashlib.sha256(message_id.encode()).hexdigest()[:32]
    head = (
        from_header
        + _header("To", recipient)
        + _header("Subject", letter.subject, text=True)
        + _header("Message-ID", message_id)
        + _header("Date", format_datetime(date))
        + "MIME-Version: 1.0\r\n"
        + f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'
    )
    delimiter = f"\r\n--{boundary}".encode()
    data = b"".join(
        [
            head.encode(),
            delimiter,
            b"\r\n",
            _part("plain", letter.text),
            delimiter,
            b"\r\n",
            _part("html", letter.html),
            delimiter,
            b"--\r\n",
        ]
    )
    return Mail(address, recipient, data)


@functools.cache
def _sender(sender: str) -> tuple[str, str]:
    """The From header and the envelope address for `sender` (`Name <address>`), which is one
    setting for the life of the process."""
    _refuse_line_breaks("From", sender)
    name, address = parseaddr(sender)
    return _header("From", formataddr((name, address), "utf-8")), address


def _header(name: str, value: str, *, text: bool = False) -> str:
    """A header line. A `text` value (free text, not an address or an id) that is not ASCII or
    does not fit on the line is written as RFC 2047 encoded words, which fold anywhere and give
    back exactly the text. An address is written as it is: one that is not ASCII goes as UTF-8
    (RFC 6532), which the mailer sends only with the server's SMTPUTF8."""
    _refuse_line_breaks(name, value)
    if text and not (value.isascii() and len(name) + 2 + len(value) <= _LINE):
        value = Header(value, "utf-8", header_name=name).encode(linesep="\r\n", maxlinelen=_LINE)
    return f"{name}: {value}\r\n"


def _refuse_line_breaks(name: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise ValueError(f"a line break in the {name} header would start a header of its own: {value!r}")


def _part(subtype: str, text: str) -> bytes:
    """A UTF-8 text part, quoted-printable: 7-bit clean for any server, readable where ASCII."""
    body = b"\r\n".join(text.encode().splitlines()) + b"\r\n"
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'.encode()
        + binascii.b2a_qp(body, istext=True)
    )


def _lines_text(order: dict[str, Any]) -> str:
    rows = [
        (
            f"{item['quantity']} x {item['name']}",
            f"@ {format_money(item['unit_price'])}",
            format_money(_line_total(item)),
        )
        for item in order["items"]
    ]
    rows.append(("", "Total", format_money(order["total"])))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return "\n".join(
        f"  {what:<{widths[0]}}  {each:>{widths[1]}}  {total:>{widths[2]}}".rstrip() for what, each, total in rows
    )


def _lines_html(order: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{item['quantity']} &times; {html.escape(item['name'])}</td>"
        f'<td align="right">{format_money(item["unit_price"])}</td>'
        f'<td align="right">{format_money(_line_total(item))}</td></tr>'
        for item in order["items"]
    )
    total = f'<tr><th colspan="2" align="right">Total</th><th align="right">{format_money(order["total"])}</th></tr>'
    return f'<table cellpadding="4">{rows}{total}</table>\n'


def _line_total(item: dict[str, Any]) -> dict[str, Any]:
    return {"amount": item["quantity"] * item["unit_price"]["amount"], "currency": item["unit_price"]["currency"]}


def _letter(subject: str, paragraphs: list[str]) -> Letter:
    return Letter(subject, _join([*paragraphs, SIGNATURE]), _page(_join_html([*paragraphs, SIGNATURE])))


def _join(paragraphs: list[str]) -> str:
    return "\n\n".join(paragraphs) + "\n"


def _join_html(paragraphs: list[str]) -> str:
    return "".join(f"<p>{html.escape(paragraph).replace(chr(10), '<br>')}</p>\n" for paragraph in paragraphs)


def _page(body: str) -> str:
    return f'<!doctype html>\n<html><body style="font-family: sans-serif">\n{body}</body></html>\n'
