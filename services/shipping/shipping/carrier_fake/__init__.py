"""The carrier, ParcelFast: an external system, simulated. Only `shipping.carrier` talks to it.

It speaks the way old carrier systems do: one upper-case ASCII line in, one line out. Requests
are fixed-width records (a two-letter code, then padded fields); answers are comma-packed
(`01,0000001042,20261123T162700`), errors `ER,<code>,<TEXT>`. A booking is a consignment with a
ten-digit number and a status code: `01` booked, `DP` dispatched, `CX` cancelled. The tracking
number (`PF` + 8 digits + a check digit) is only allocated when the parcel leaves.

    BK<customer ref 36><name 30><line1 30><line2 30><city 25><postcode 10><country 2>   book
    DP<consignment no 10>                                                             dispatch
    CX<consignment no 10>                                                             cancel
    EQ<customer ref 36>                                                               enquire

Like the real thing, it is forgiving of repeats: booking a customer reference it already holds
answers that booking, dispatching a dispatched consignment or cancelling a cancelled one answers
its current state. Its records live in its own tables, reached through its own pool, and each
request commits on its own: what it did survives whatever happens to the caller's transaction.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import asyncpg

MIGRATIONS = Path(__file__).parent / "migrations"

BOOKING_LAYOUT = (
    ("customer_ref", 36),
    ("name", 30),
    ("line1", 30),
    ("line2", 30),
    ("city", 25),
    ("postcode", 10),
    ("country", 2),
)
BOOKING_LENGTH = 2 + sum(width for _, width in BOOKING_LAYOUT)
REF_WIDTH = 36
CONSIGNMENT_WIDTH = 10
_CHECK_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


def tracking_number(serial: int) -> str:
    """`PF` + eight digits + a mod-11 check digit (the UPU S10 scheme the carrier borrowed)."""
    digits = f"{serial:08d}"
    check = 11 - sum(int(d) * w for d, w in zip(digits, _CHECK_WEIGHTS, strict=True)) % 11
    if check == 10:
        check = 0
    elif check == 11:
        check = 5
    return f"PF{digits}{check}"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S")


def _error(code: str, text: str) -> str:
    return f"ER,{code},{text}"


class CarrierFake:
    """The carrier's one entry point, `transmit(line) -> line`. `latency_ms` is each call's network time."""

    def __init__(self, pool: asyncpg.Pool, *, latency_ms: float = 2.0):
        self._pool = pool
        self._latency = latency_ms / 1000

    async def transmit(self, line: str) -> str:
        await asyncio.sleep(self._latency)
        if not line.isascii() or line != line.upper():
            return _error("E01", "INVALID CHARACTERS")
        code, body = line[:2], line[2:]
        async with self._pool.acquire() as conn, conn.transaction():
            if code == "BK" and len(line) == BOOKING_LENGTH:
                return await self._book(conn, line)
            if code in ("DP", "CX") and len(body) == CONSIGNMENT_WIDTH and body.isdigit():
                return await (self._dispatch if code == "DP" else self._cancel)(conn, body)
            if code == "EQ" and len(body) == REF_WIDTH:
                return await self._enquire(conn, body)
        return _error("E02", "UNKNOWN OR MALFORMED RECORD")

    async def _book(self, conn: asyncpg.Connection, record: str) -> str:
        ref = record[2 : 2 + REF_WIDTH]
        if not ref.strip():
            return _error("E03", "CUSTOMER REF REQUIRED")
        # A concurrent booking of the same reference waits here for the first one's commit.
        await conn.execute(
            "INSERT INTO carrier_consignments (consignment_no, customer_ref, booking_record, status_code)"
            " VALUES (lpad(nextval('carrier_consignment_numbers')::text, 10, '0'), $1, $2, '01')"
            " ON CONFLICT (customer_ref) DO NOTHING",
            ref,
            record,
        )
        return _status_line(await conn.fetchrow("SELECT * FROM carrier_consignments WHERE customer_ref = $1", ref))

    async def _dispatch(self, conn: asyncpg.Connection, consignment_no: str) -> str:
        row = await _for_update(conn, consignment_no)
        if row is None:
            return _error("E04", "CONSIGNMENT NOT FOUND")
        if row["status_code"] == "CX":
            return _error("E08", "CONSIGNMENT CANCELLED")
        if row["status_code"] == "01":
            serial = int(consignment_no)
            row = await conn.fetchrow(
                "UPDATE carrier_consignments SET status_code = 'DP', tracking_no = $2, changed_at = now()"
                " WHERE consignment_no = $1 RETURNING *",
                consignment_no,
                tracking_number(serial),
            )
        return _status_line(row)

    async def _cancel(self, conn: asyncpg.Connection, consignment_no: str) -> str:
        row = await _for_update(conn, consignment_no)
        if row is None:
            return _error("E04", "CONSIGNMENT NOT FOUND")
        if row["status_code"] == "DP":
            return _error("E07", f"ALREADY DISPATCHED {row['tracking_no']}")
        if row["status_code"] == "01":
            row = await conn.fetchrow(
                "UPDATE carrier_consignments SET status_code = 'CX', changed_at = now()"
                " WHERE consignment_no = $1 RETURNING *",
                consignment_no,
            )
        return _status_line(row)

    async def _enquire(self, conn: asyncpg.Connection, ref: str) -> str:
        row = await conn.fetchrow("SELECT * FROM carrier_consignments WHERE customer_ref = $1", ref)
        return _status_line(row) if row else _error("E04", "CONSIGNMENT NOT FOUND")


async def _for_update(conn: asyncpg.Connection, consignment_no: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM carrier_consignments WHERE consignment_no = $1 FOR UPDATE", consignment_no
    )


def _status_line(row: asyncpg.Record) -> str:
    """`<status>,<consignment no>,<tracking no or empty>,<last change>`."""
    return ",".join((row["status_code"], row["consignment_no"], row["tracking_no"] or "", _stamp(row["changed_at"])))
