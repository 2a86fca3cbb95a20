"""Recommendations' use cases: learning from confirmed orders, and answering for a product.

The handlers run inside the inbox's transaction (`conn`), so an event redelivered by the broker
is applied once; `learned_orders` makes each order count once and come out again if the customer
cancels it, whatever order its confirmation and its cancellation arrive in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from chassis.messaging import Envelope
from chassis.messaging.inbox import CLAIM_LIFETIME_SECONDS
from recommendations import domain, repository


async def learn_from_order(event: Envelope, conn: asyncpg.Connection) -> None:
    """OrderConfirmed: its products were bought together, unless its cancellation came first."""
    if await repository.record_order(conn, event.data["order_id"], "learned"):
        await repository.learn_order(conn, domain.units_per_product(event.data["items"]))


async def forget_order(event: Envelope, conn: asyncpg.Connection) -> None:
    """OrderCancelled: an order the customer cancelled was not bought after all, so what its
    confirmation taught is taken back. One not learned yet is recorded cancelled: should its
    confirmation come later (a retried delivery overtaken), it teaches nothing."""
    order_id = event.data["order_id"]
    if await repository.record_order(conn, order_id, "cancelled"):
        return
    if await repository.cancel_learned_order(conn, order_id):
        await repository.unlearn_order(conn, domain.units_per_product(event.data["items"]))


async def forget_old_orders(pool: asyncpg.Pool) -> int:
    """Housekeeping: an order's record is kept as long as its events can come back."""
    return await repository.forget_orders_older_than(pool, CLAIM_LIFETIME_SECONDS)


async def learn_product(event: Envelope, conn: asyncpg.Connection) -> None:
    """ProductCreated: the product's categories, its neighbours while the store is cold."""
    await repository.learn_product(conn, event.data["product_id"], event.data["categories"])


async def recommend(product_id: str, limit: int, *, pool: asyncpg.Pool) -> list[str]:
    """Up to `limit` products for `product_id`'s page: bought together first, then the products of
    its categories, then the best sellers. A source is asked only while the list is short, for
    enough to fill it even if all it already holds (and the product itself) are in its answer."""
    answer = domain.recommend(product_id, await repository.bought_with(pool, product_id, limit), limit=limit)
    if len(answer) < limit:
        neighbours = await repository.same_categories(pool, product_id, limit)
        answer = domain.recommend(product_id, answer, neighbours, limit=limit)
    if len(answer) < limit:
        answer = domain.recommend(product_id, answer, await repository.best_sellers(pool, limit + 1), limit=limit)
    return answer


SUBSCRIPTIONS: dict[str, Callable[[Envelope, Any], Awaitable[None]]] = {
    "agora.orders.OrderConfirmed.v1": learn_from_order,
    "agora.orders.OrderCancelled.v1": forget_order,
    "agora.catalog.ProductCreated.v1": learn_product,
}
