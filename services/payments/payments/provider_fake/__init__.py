"""The payment provider: an external system, simulated. Only `payments.provider` talks to it.

It keeps a model of its own on purpose, the way a real provider does, so the adapter has real
translating to do: charges with ids `ch_...`, amounts as decimal strings in major units
(`"44.99"`), lower-case currencies, statuses `requires_capture`/`succeeded`/`canceled`/`failed`,
errors as `{"error": {"type", "code", "decline_code"?, "message"}}` with an HTTP status.

Like a real provider it answers a request repeated with the same idempotency key with the first
answer (success or error) instead of performing it again, and refuses the key with other
parameters. Its records live in its own tables (`provider_*`), reached through its own pool, and
each request commits in its own transaction: what it did survives whatever happens to the
caller's transaction, as a remote system's would.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import asyncpg

MIGRATIONS = Path(__file__).parent / "migrations"

# Containment alone cannot use the index on order_id, and every search read all the charges ever
# made; the equality beside it can.
CHARGES_OF_ORDER = (
    "SELECT * FROM provider_charges WHERE metadata @> $1::jsonb AND metadata ->> 'order_id' = $2 ORDER BY created, id"
)

# The provider's documented test tokens: None approves, a string is the decline code.
TEST_TOKENS: dict[str, str | None] = {
    "tok_visa": None,
    "tok_mastercard": None,
    "tok_chargeDeclined": "generic_decline",
    "tok_insufficientFunds": "insufficient_funds",
}
_DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
}

Json = dict[str, Any]


class ProviderError(Exception):
    """An error answer: `http_status` and the provider's body, `{"error": {...}}`."""

    def __init__(self, http_status: int, error: Json):
        super().__init__(f"{http_status} {error.get('type')}: {error.get('code') or error.get('message')}")
        self.http_status = http_status
        self.error = error

    @property
    def code(self) -> str | None:
        return self.error.get("code")


def _invalid(code: str, message: str, param: str | None = None, status: int = 400) -> ProviderError:
    error: Json = {"type": "invalid_request_error", "code": code, "message": message}
    if param:
        error["param"] = param
    return ProviderError(status, error)


class PaymentProviderFake:
    """The provider's API, one coroutine per endpoint. `latency_ms` is each call's network time."""

    def __init__(self, pool: asyncpg.Pool, *, latency_ms: float = 5.0, clock: Callable[[], float] = time.time):
        self._pool = pool
        self._latency = latency_ms / 1000
        self._clock = clock

    async def create_charge(
        self,
        *,
        amount: str,
        currency: str,
        source: str,
        capture: bool = True,
        metadata: dict[str, str] | None = None,
        idempotency_key: str,
    ) -> Json:
        """Charges `source`; with `capture=False` only authorizes (`requires_capture`)."""
        request = {
            "amount": amount,
            "currency": currency,
            "source": source,
            "capture": capture,
            "metadata": metadata or {},
        }

        async def perform(conn: asyncpg.Connection) -> Json:
            value = _positive_decimal(amount)
            if len(currency) != 3 or not currency.isalpha() or not currency.islower():
                raise _invalid("parameter_invalid", "Invalid currency.", "currency")
            if source not in TEST_TOKENS:
                raise _invalid("resource_missing", "No such token.", "source", status=404)
            decline_code = TEST_TOKENS[source]
            status = "failed" if decline_code else "succeeded" if capture else "requires_capture"
            row = await conn.fetchrow(
                "INSERT INTO provider_charges (id, amount, amount_captured, currency, status, failure_code, metadata,"
                " created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
                _new_id("ch"),
                value,
                value if status == "succeeded" else Decimal(0),
                currency,
                status,
                "card_declined" if decline_code else None,
                json.dumps(metadata or {}),
                int(self._clock()),
            )
            if decline_code:
                raise ProviderError(
                    402,
                    {
                        "type": "card_error",
                        "code": "card_declined",
                        "decline_code": decline_code,
                        "message": _DECLINE_MESSAGES[decline_code],
                        "charge": row["id"],
                    },
                )
            return _charge(row)

        return await self._idempotent(idempotency_key, "create_charge", request, perform)

    async def capture_charge(self, charge: str, *, idempotency_key: str) -> Json:
        async def perform(conn: asyncpg.Connection) -> Json:
            row = await self._charge_for_update(conn, charge)
            if row["status"] != "requires_capture":
                raise _invalid("charge_unexpected_state", f"This charge has a status of {row['status']}.")
            return _charge(
                await conn.fetchrow(
                    "UPDATE provider_charges SET status = 'succeeded', amount_captured = amount WHERE id = $1 RETURNING *",
                    charge,
                )
            )

        return await self._idempotent(idempotency_key, "capture_charge", {"charge": charge}, perform)

    async def cancel_charge(self, charge: str, *, idempotency_key: str) -> Json:
        """Releases an uncaptured charge's hold."""

        async def perform(conn: asyncpg.Connection) -> Json:
            row = await self._charge_for_update(conn, charge)
            if row["status"] != "requires_capture":
                raise _invalid("charge_unexpected_state", f"This charge has a status of {row['status']}.")
            return _charge(
                await conn.fetchrow("UPDATE provider_charges SET status = 'canceled' WHERE id = $1 RETURNING *", charge)
            )

        return await self._idempotent(idempotency_key, "cancel_charge", {"charge": charge}, perform)

    async def create_refund(self, *, charge: str, amount: str | None = None, idempotency_key: str) -> Json:
        """Refunds `amount` of a captured charge, all that is left of it when `amount` is None."""

        async def perform(conn: asyncpg.Connection) -> Json:
            row = await self._charge_for_update(conn, charge)
            if row["status"] != "succeeded":
                raise _invalid("charge_unexpected_state", f"This charge has a status of {row['status']}.")
            left = row["amount_captured"] - row["amount_refunded"]
            value = left if amount is None else _positive_decimal(amount)
            if value <= 0 or value > left:
                raise _invalid("amount_too_large", "Refund amount is greater than the unrefunded amount.", "amount")
            await conn.execute(
                "UPDATE provider_charges SET amount_refunded = amount_refunded + $2 WHERE id = $1", charge, value
            )
            refund = await conn.fetchrow(
                "INSERT INTO provider_refunds (id, charge, amount, status, created)"
                " VALUES ($1, $2, $3, 'succeeded', $4) RETURNING *",
                _new_id("re"),
                charge,
                value,
                int(self._clock()),
            )
            return {
                "id": refund["id"],
                "object": "refund",
                "amount": str(refund["amount"]),
                "charge": charge,
                "currency": row["currency"],
                "status": refund["status"],
                "created": refund["created"],
            }

        return await self._idempotent(idempotency_key, "create_refund", {"charge": charge, "amount": amount}, perform)

    async def retrieve_charge(self, charge: str) -> Json:
        await asyncio.sleep(self._latency)
        row = await self._pool.fetchrow("SELECT * FROM provider_charges WHERE id = $1", charge)
        if row is None:
            raise _invalid("resource_missing", "No such charge.", "charge", status=404)
        return _charge(row)

    async def list_charges(self, *, metadata: dict[str, str]) -> Json:
        """Charges whose metadata includes `metadata`, oldest first. Like a real provider's search,
        it wants a key it indexes: `metadata` must name an `order_id`."""
        await asyncio.sleep(self._latency)
        if "order_id" not in metadata:
            raise _invalid("parameter_missing", "Searching charges needs metadata[order_id].", "metadata")
        rows = await self._pool.fetch(CHARGES_OF_ORDER, json.dumps(metadata), metadata["order_id"])
        return {"object": "list", "data": [_charge(row) for row in rows], "has_more": False}

    async def _charge_for_update(self, conn: asyncpg.Connection, charge: str) -> asyncpg.Record:
        row = await conn.fetchrow("SELECT * FROM provider_charges WHERE id = $1 FOR UPDATE", charge)
        if row is None:
            raise _invalid("resource_missing", "No such charge.", "charge", status=404)
        return row

    async def _idempotent(
        self, key: str, endpoint: str, request: Json, perform: Callable[[asyncpg.Connection], Awaitable[Json]]
    ) -> Json:
        await asyncio.sleep(self._latency)
        fingerprint = hashlib.sha256(json.dumps([endpoint, request], sort_keys=True).encode()).hexdigest()
        async with self._pool.acquire() as conn, conn.transaction():
            # A concurrent request with the same key makes this INSERT wait for its commit, so a
            # key found taken always has its answer recorded.
            claimed = await conn.fetchval(
                "INSERT INTO provider_idempotency_keys (key, request_fingerprint, http_status, response, created)"
                " VALUES ($1, $2, 0, '{}', $3) ON CONFLICT DO NOTHING RETURNING true",
                key,
                fingerprint,
                int(self._clock()),
            )
            if claimed:
                try:
                    http_status, body = 200, await perform(conn)
                except ProviderError as error:
                    http_status, body = error.http_status, {"error": error.error}
                await conn.execute(
                    "UPDATE provider_idempotency_keys SET http_status = $2, response = $3 WHERE key = $1",
                    key,
                    http_status,
                    json.dumps(body),
                )
            else:
                first = await conn.fetchrow("SELECT * FROM provider_idempotency_keys WHERE key = $1", key)
                if first["request_fingerprint"] != fingerprint:
                    raise ProviderError(
                        400,
                        {
                            "type": "idempotency_error",
                            "message": (
                                "Keys for idempotent requests can only be used with the same parameters they were first"
                                " used with."
                            ),
                        },
                    )
                http_status, body = first["http_status"], json.loads(first["response"])
        if http_status != 200:
            raise ProviderError(http_status, body["error"])
        return body


def _positive_decimal(amount: str) -> Decimal:
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise _invalid("parameter_invalid_decimal", "Invalid decimal.", "amount") from None
    if not value.is_finite() or value <= 0:
        raise _invalid("amount_too_small", "Amount must be positive.", "amount")
    return value


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _charge(row: asyncpg.Record) -> Json:
    return {
        "id": row["id"],
        "object": "charge",
        "amount": str(row["amount"]),
        "amount_captured": str(row["amount_captured"]),
        "amount_refunded": str(row["amount_refunded"]),
        "captured": row["status"] == "succeeded",
        "refunded": row["amount_captured"] > 0 and row["amount_refunded"] == row["amount_captured"],
        "currency": row["currency"],
        "status": row["status"],
        "failure_code": row["failure_code"],
        "metadata": json.loads(row["metadata"]),
        "created": row["created"],
    }
