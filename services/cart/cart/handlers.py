"""Cart's use cases: one verb-named function each, the user first, dependencies by keyword.

The user always comes from the verified access token (the api passes the principal's id), never
from a request field.
"""

from __future__ import annotations

from typing import Protocol

from redis.asyncio.client import Pipeline

from cart import domain
from cart.domain import PricedCart, Product, UnknownProduct
from cart.store import CartStore
from chassis.messaging import Envelope


class Catalog(Protocol):
    async def products(self, ids: set[str]) -> dict[str, Product]: ...


async def get_quantities(user_id: str, *, store: CartStore) -> dict[str, int]:
    return await store.quantities(user_id)


async def get_cart(user_id: str, *, store: CartStore, catalog: Catalog) -> PricedCart:
    quantities = await store.quantities(user_id)
    return domain.price(quantities, await catalog.products(set(quantities)))


async def set_item(user_id: str, product_id: str, quantity: int, *, store: CartStore, catalog: Catalog) -> PricedCart:
    """Sets a line's quantity (0 removes it); UnknownProduct when catalog does not know it."""
    domain.check_quantity(quantity)
    quantities = await store.quantities(user_id)
    domain.check_room(quantities, product_id, quantity)
    products = await catalog.products(set(quantities) | {product_id})
    if product_id not in products:
        raise UnknownProduct(product_id)
    await store.set_quantity(user_id, product_id, quantity)
    return domain.price(await store.quantities(user_id), products)


async def remove_item(user_id: str, product_id: str, *, store: CartStore, catalog: Catalog) -> PricedCart:
    await store.set_quantity(user_id, product_id, 0)
    return await get_cart(user_id, store=store, catalog=catalog)


async def clear_cart(user_id: str, *, store: CartStore) -> None:
    await store.clear(user_id)


async def remove_ordered(user_id: str, order_id: str, lines: dict[str, int], *, store: CartStore) -> None:
    """Orders placed these lines: they leave the cart at once, so the next order cannot take them again."""
    await store.remove_ordered(user_id, order_id, lines)


async def remove_ordered_lines(event: Envelope, pipe: Pipeline, *, store: CartStore) -> None:
    """OrderPlaced: the order's lines leave the cart, if orders' own call did not take them out
    already. Lines added since stay: the event may come late, after the shopper filled the cart
    again. Queued on the inbox's transaction."""
    order = event.data
    lines = {item["product_id"]: item["quantity"] for item in order["items"]}
    await store.queue_remove_ordered(pipe, order["user_id"], order["order_id"], lines)


SUBSCRIPTIONS = {"agora.orders.OrderPlaced.v1": remove_ordered_lines}
