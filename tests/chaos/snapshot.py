"""Reading a running city for the checkers: each service's own database (as the city's Postgres
superuser, `<city>_<service>`), the SMTP sink's files and JetStream's consumer info.

Where things are comes from the city's own state file (`AGORA_HOME/city.json`) and the
superuser's password from `AGORA_HOME/secrets/postgres.password`, both written by `agora up`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import nats

from agora_cli.config import Home
from agora_cli.infra import operator_nats_url
from tests.chaos.checkers import (
    Charge,
    ConsumerLag,
    Email,
    Movements,
    Order,
    Payment,
    Reservation,
    Shipment,
    Snapshot,
    Stock,
)

_MESSAGE_ID = re.compile(r"<[^.>]+\.(?P<kind>[a-z_]+)@notifications\.agora>")
_ORDER_ID = re.compile(r"order ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
_MINOR_EXPONENT = {"jpy": 0, "krw": 0, "bhd": 3, "kwd": 3}


class CityReader:
    """One running city, as its files describe it."""

    def __init__(self, home: Path):
        self.home = home

    def state(self) -> dict[str, Any]:
        return json.loads((self.home / "city.json").read_text())

    @property
    def city(self) -> str:
        return self.state()["city"]

    def infra_url(self, name: str) -> str:
        return next(entry["url"] for entry in self.state()["infra"] if entry["name"] == name)

    def nats_url(self) -> str:
        """The city's NATS, logged in as the operator."""
        return operator_nats_url(Home(self.home), next(e for e in self.state()["infra"] if e["name"] == "nats"))

    def services(self) -> list[str]:
        return sorted({entry["name"] for entry in self.state()["services"]})

    def database(self, service: str) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        """The service's own database, as the superuser."""
        return self.database_of(f"{self.city}_{service}")

    @contextlib.asynccontextmanager
    async def database_of(self, name: str) -> AsyncIterator[asyncpg.Connection]:
        url = urlsplit(self.infra_url("postgres"))
        password = (self.home / "secrets" / "postgres.password").read_text().strip()
        conn = await asyncpg.connect(host=url.hostname, port=url.port, user="postgres", password=password,
                                     database=name, timeout=10)
        try:
            yield conn
        finally:
            await conn.close()

    # ------------------------------------------------------------ per service

    async def orders(self) -> list[Order]:
        async with self.database("orders") as conn:
            rows = await conn.fetch("SELECT id::text, status, total_amount, currency, items, history, tracking_number"
                                    " FROM orders")
        return [
            Order(
                id=row["id"], status=row["status"], total=row["total_amount"], currency=row["currency"],
                items=tuple((item["product_id"], int(item["quantity"])) for item in json.loads(row["items"])),
                history=tuple(change["status"] for change in json.loads(row["history"])),
                tracking_number=row["tracking_number"],
            )
            for row in rows
        ]

    async def payments(self) -> tuple[list[Payment], list[Charge]]:
        async with self.database("payments") as conn:
            payments = await conn.fetch("SELECT order_id, status, amount, amount_captured, amount_refunded FROM payments")
            charges = await conn.fetch("SELECT id, metadata ->> 'order_id' AS order_id, status, currency, amount,"
                                       " amount_captured, amount_refunded FROM provider_charges")
        return (
            [Payment(r["order_id"], r["status"], r["amount"], r["amount_captured"], r["amount_refunded"]) for r in payments],
            [
                Charge(r["id"], r["order_id"] or "", r["status"], _minor(r["amount"], r["currency"]),
                       _minor(r["amount_captured"], r["currency"]), _minor(r["amount_refunded"], r["currency"]))
                for r in charges
            ],
        )

    async def inventory(self) -> tuple[list[Stock], list[Movements], list[Reservation]]:
        async with self.database("inventory") as conn:
            stock = await conn.fetch("SELECT product_id, available, reserved, sold FROM stock")
            movements = await conn.fetch(
                """SELECT product_id, sum(available_delta) AS available, sum(reserved_delta) AS reserved,
                          sum(sold_delta) AS sold,
                          coalesce(sum(available_delta + reserved_delta + sold_delta)
                                   FILTER (WHERE kind = 'adjust'), 0) AS adjusted
                   FROM stock_movements GROUP BY product_id""")
            reservations = await conn.fetch("SELECT order_id, state FROM reservations")
            lines = await conn.fetch("SELECT order_id, product_id, quantity FROM reservation_lines")
        lines_of: dict[str, list[tuple[str, int]]] = {}
        for line in lines:
            lines_of.setdefault(line["order_id"], []).append((line["product_id"], line["quantity"]))
        return (
            [Stock(r["product_id"], r["available"], r["reserved"], r["sold"]) for r in stock],
            [Movements(r["product_id"], int(r["available"]), int(r["reserved"]), int(r["sold"]), int(r["adjusted"]))
             for r in movements],
            [Reservation(r["order_id"], r["state"], tuple(lines_of.get(r["order_id"], []))) for r in reservations],
        )

    async def shipments(self) -> list[Shipment]:
        async with self.database("shipping") as conn:
            rows = await conn.fetch("SELECT order_id, status, tracking_number, dispatch_attempts FROM shipments")
        return [Shipment(r["order_id"], r["status"], r["tracking_number"], r["dispatch_attempts"]) for r in rows]

    async def unpublished(self) -> dict[str, int]:
        counts = {}
        async with self.database_of("postgres") as conn:
            databases = set(await conn.fetch("SELECT datname FROM pg_database"))
        for service in self.services():
            if (f"{self.city}_{service}",) not in {tuple(row) for row in databases}:
                continue  # a service without a database (cart keeps its state in Redis)
            async with self.database(service) as conn:
                if await conn.fetchval("SELECT to_regclass('outbox') IS NOT NULL"):
                    counts[service] = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return counts

    def emails(self) -> list[Email]:
        emails = []
        for path in sorted((self.home / "mail").glob("*.eml")):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            message_id = str(message.get("Message-ID", "")).strip()
            kind = _MESSAGE_ID.fullmatch(message_id)
            if not kind:
                continue
            body = message.get_body(preferencelist=("plain",))
            order = _ORDER_ID.search(body.get_content() if body else "")
            emails.append(Email(message_id, kind["kind"], str(message.get("To", "")),
                                order[1] if order and kind["kind"] != "welcome" else None))
        return emails

    # ------------------------------------------------------------ broker

    async def consumers(self) -> list[ConsumerLag]:
        client = await nats.connect(self.nats_url(), connect_timeout=5, max_reconnect_attempts=1)
        try:
            stream_names = [info.config.name for info in await client.jetstream().streams_info()]
            lags = []
            for stream in stream_names:
                for info in await client.jetstream().consumers_info(stream):
                    lags.append(ConsumerLag(stream, info.name, info.num_pending or 0, info.num_ack_pending or 0))
            return lags
        finally:
            await client.close()

    async def dead_letters(self) -> list[dict[str, Any]]:
        from chassis import messaging
        from chassis.settings import ServiceSettings

        settings = ServiceSettings(service="chaos_suite", http_port=0, city=self.city, bus="nats",
                                   nats_url=self.nats_url())
        bus = await messaging.connect_bus(settings)
        try:
            letters = await messaging.list_dead_letters(bus)
        finally:
            await bus.close()
        return [{"ref": letter.ref, "consumer": letter.consumer, "event_type": letter.event_type,
                 "deliveries": letter.deliveries, "error": letter.error[:300]} for letter in letters]

    # ------------------------------------------------------------ all of it

    async def snapshot(self, *, accepted: set[str] | None = None, initial_stock: dict[str, int] | None = None) -> Snapshot:
        orders, (payments, charges), (stock, movements, reservations), shipments = await asyncio.gather(
            self.orders(), self.payments(), self.inventory(), self.shipments())
        return Snapshot(
            orders=orders, accepted=set(accepted or ()), payments=payments, charges=charges, stock=stock,
            movements=movements, reservations=reservations, initial_stock=dict(initial_stock or {}),
            shipments=shipments, emails=await asyncio.to_thread(self.emails), consumers=await self.consumers(),
            unpublished=await self.unpublished(), dead_letters=await self.dead_letters(),
        )


def _minor(amount: Decimal, currency: str) -> int:
    return int(Decimal(amount).scaleb(_MINOR_EXPONENT.get(currency.lower(), 2)))
