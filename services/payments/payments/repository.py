"""All of payments' SQL (asyncpg), on the connection of the handler's transaction."""

from __future__ import annotations

import asyncpg

from payments.domain import Money, Payment, Status


class ConcurrentUpdate(Exception):
    """Someone saved the payment since it was read: retry from a fresh read."""


class Repository:
    def __init__(self, connection: asyncpg.Connection):
        self.connection = connection

    async def lock_order(self, order_id: str) -> None:
        """Serializes everything payments does for one order until the transaction ends."""
        await self.connection.execute("SELECT pg_advisory_xact_lock(hashtextextended('payments:' || $1, 0))", order_id)

    async def get(self, order_id: str) -> Payment | None:
        row = await self.connection.fetchrow("SELECT * FROM payments WHERE order_id = $1", order_id)
        return _payment(row) if row else None

    async def save(self, payment: Payment) -> None:
        """Inserts a new payment or updates the one read, if nobody saved it since (compare-and-set)."""
        values = (
            payment.order_id,
            payment.user_id,
            payment.amount.currency,
            payment.amount.amount,
            str(payment.status),
            payment.authorized,
            payment.captured,
            payment.refunded,
            payment.charge_id,
            payment.decline_reason,
        )
        if payment.version == 0:
            saved = await self.connection.fetchval(
                "INSERT INTO payments (order_id, user_id, currency, amount, status, amount_authorized,"
                " amount_captured, amount_refunded, charge_id, decline_reason)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING RETURNING version",
                *values,
            )
        else:
            saved = await self.connection.fetchval(
                "UPDATE payments SET user_id = $2, currency = $3, amount = $4, status = $5, amount_authorized = $6,"
                " amount_captured = $7, amount_refunded = $8, charge_id = $9, decline_reason = $10,"
                " version = version + 1, updated_at = now()"
                " WHERE order_id = $1 AND version = $11 RETURNING version",
                *values,
                payment.version,
            )
        if saved is None:
            raise ConcurrentUpdate(payment.order_id)
        payment.version = saved


async def find_payment(pool: asyncpg.Pool, order_id: str) -> Payment | None:
    async with pool.acquire() as conn:
        return await Repository(conn).get(order_id)


def _payment(row: asyncpg.Record) -> Payment:
    return Payment(
        order_id=row["order_id"],
        user_id=row["user_id"],
        amount=Money(row["amount"], row["currency"]),
        status=Status(row["status"]),
        authorized=row["amount_authorized"],
        captured=row["amount_captured"],
        refunded=row["amount_refunded"],
        charge_id=row["charge_id"],
        decline_reason=row["decline_reason"],
        version=row["version"],
    )
