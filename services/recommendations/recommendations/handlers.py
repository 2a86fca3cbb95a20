"""Recommendations' use cases: learning from confirmed orders, and answering for a product.

`learn_from_order` runs inside the inbox's transaction (`conn`), so an order redelivered by the
broker is counted once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from chassis.messaging import Envelope
from recommendations import domain, repository


async def learn_from_order(event: Envelope, conn: asyncpg.Connection) -> None:
    """OrderConfirmed: its products were bought together."""
    await repository.learn_order(conn, domain.units_per_product(event.data["items"]))


async def recommend(product_id: str, limit: int, *, pool: asyncpg.Pool) -> list[str]:
    """Up to `limit` products for `product_id`'s page: bought together first, best sellers after."""
    together = await repository.bought_with(pool, product_id, limit)
    # Enough best sellers to fill the answer even if all of `together` and the product are among them.
    fill = await repository.best_sellers(pool, limit + 1) if len(together) < limit else []
    return domain.recommend(product_id, together, fill, limit)


SUBSCRIPTIONS: dict[str, Callable[[Envelope, Any], Awaitable[None]]] = {
    "agora.orders.OrderConfirmed.v1": learn_from_order,
}
