"""Notifications against a throwaway Postgres and a real SMTP server (aiosmtpd, on a free port,
keeping what it receives in memory)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from chassis import db
from chassis.messaging import Envelope, PostgresInbox
from notifications import handlers
from notifications.bootstrap import MIGRATIONS
from notifications.mailer import Mailer, SmtpMailer
from tests.support import free_port

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts" / "events"
SENDER = "Agora <no-reply@agora.example>"
REFUSED = "nobody@refused.example"
"""The one recipient the test SMTP server refuses, as a server refuses a mailbox it does not know."""
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "line2": "",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


@pytest.fixture(autouse=True)
def event_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    # Run from the repository root, `chassis` can import as the namespace package `chassis/`,
    # which leaves the chassis unable to find contracts/events by itself.
    monkeypatch.setenv("AGORA_CONTRACTS_DIR", str(CONTRACTS))


def new_id() -> str:
    return str(uuid.uuid4())


def user_registered(user_id: str, *, email: str = "ada@example.com", name: str = "Ada Lovelace") -> Envelope:
    return Envelope.new(
        "identity", "UserRegistered", {"user_id": user_id, "email": email, "name": name}, subject=user_id
    )


ITEMS = [
    {"product_id": "p-1", "name": "Espresso cup", "quantity": 2, "unit_price": {"amount": 1250, "currency": "USD"}},
    {"product_id": "p-2", "name": "Milk jug", "quantity": 1, "unit_price": {"amount": 1999, "currency": "USD"}},
]
TOTAL = {"amount": 4499, "currency": "USD"}


def order_confirmed(order_id: str, user_id: str) -> Envelope:
    data = {"order_id": order_id, "user_id": user_id, "items": ITEMS, "total": TOTAL, "shipping_address": ADDRESS}
    return Envelope.new("orders", "OrderConfirmed", data, subject=order_id)


def order_cancelled(order_id: str, user_id: str, reason: str = "out_of_stock") -> Envelope:
    data = {"order_id": order_id, "user_id": user_id, "items": ITEMS, "total": TOTAL, "reason": reason}
    return Envelope.new("orders", "OrderCancelled", data, subject=order_id)


def shipment_dispatched(order_id: str, user_id: str) -> Envelope:
    data = {"order_id": order_id, "user_id": user_id, "carrier": "parcelfast", "tracking_number": "PF000010429"}
    return Envelope.new("shipping", "ShipmentDispatched", data, subject=order_id)


@dataclass
class Mailbox:
    """What the SMTP server received, parsed."""

    messages: list[EmailMessage] = field(default_factory=list)
    sessions: list[object] = field(default_factory=list)
    """The SMTP session (the client's address and port) each message came in."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address == REFUSED:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        self.sessions.append(session.peer)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [message for message in self.messages if message["To"] == address]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:  # noqa: ASYNC110 (the server runs in its own thread)
                await asyncio.sleep(0.02)
        return self.messages


@dataclass
class SmtpServer:
    url: str
    mailbox: Mailbox
    controller: Controller

    def stop(self) -> None:
        """Stops the server, dropping the sessions it has open."""
        self.controller.stop()

    def start(self) -> None:
        """Starts it again, on the same port, with the same mailbox."""
        self.controller = Controller(
            self.mailbox, hostname=self.controller.hostname, port=self.controller.port, enable_SMTPUTF8=True
        )
        self.controller.start()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    mailbox = Mailbox()
    port = free_port()
    # As servers of today do: an address that is not ASCII travels only under SMTPUTF8.
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    controller.start()
    server = SmtpServer(f"smtp://127.0.0.1:{port}", mailbox, controller)
    try:
        yield server
    finally:
        server.stop()


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return part.get_content().replace("\r\n", "\n")


@dataclass
class Notifications:
    """Notifications' handlers on a real database, fed the way the consumer feeds them, sending
    to a real SMTP server."""

    pool: asyncpg.Pool
    mailer: Mailer

    async def deliver(self, event: Envelope, *, mailer: Mailer | None = None) -> bool:
        handler = handlers.subscriptions(mailer=mailer or self.mailer, sender=SENDER)[event.type]
        return await PostgresInbox(self.pool).apply_once("notifications", event.id, lambda conn: handler(event, conn))

    async def sent_log(self) -> list[tuple[str, str]]:
        rows = await self.pool.fetch("SELECT event_id, kind FROM sent_emails ORDER BY sent_at")
        return [(row["event_id"], row["kind"]) for row in rows]


@pytest.fixture
async def notifications(fresh_database: str, smtp_server: SmtpServer) -> AsyncIterator[Notifications]:
    pool = await db.connect(fresh_database, min_size=1, max_size=4)
    try:
        await db.migrate(pool, MIGRATIONS)
        mailer = SmtpMailer(smtp_server.url)
        try:
            yield Notifications(pool, mailer)
        finally:
            await mailer.close()
    finally:
        await pool.close()
