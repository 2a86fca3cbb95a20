"""Taking an order's lines out of the cart on OrderPlaced, through the real Redis inbox the
consumer uses, and when orders asks at once."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from cart import handlers
from cart.store import CartStore
from chassis.messaging import Envelope, RedisInbox
from chassis.messaging.inbox import CLAIM_LIFETIME_SECONDS
from tests.cart.conftest import new_id, order_placed


class Consumer:
    def __init__(self, redis: Redis, city: str):
        prefix = f"{city}:cart:"
        self.store = CartStore(redis, prefix)
        self.inbox = RedisInbox(redis, prefix)

    async def deliver(self, event: Envelope) -> bool:
        handler = handlers.SUBSCRIPTIONS[event.type]
        return await self.inbox.apply_once("cart", event.id, lambda pipe: handler(event, pipe, store=self.store))


async def test_an_order_clears_its_customers_cart_only(redis: Redis, city: str) -> None:
    consumer = Consumer(redis, city)
    ada, bob, cup = new_id(), new_id(), new_id()
    await consumer.store.set_quantity(ada, cup, 2)
    await consumer.store.set_quantity(bob, cup, 1)

    assert await consumer.deliver(order_placed(ada, cup, 2)) is True

    assert await consumer.store.quantities(ada) == {}
    assert await consumer.store.quantities(bob) == {cup: 1}


async def test_a_redelivered_order_never_clears_a_cart_filled_again(redis: Redis, city: str) -> None:
    consumer = Consumer(redis, city)
    ada, cup, jug = new_id(), new_id(), new_id()
    await consumer.store.set_quantity(ada, cup, 2)
    event = order_placed(ada, cup, 2)
    await consumer.deliver(event)
    await consumer.store.set_quantity(ada, jug, 1)

    assert await consumer.deliver(event) is False

    assert await consumer.store.quantities(ada) == {jug: 1}


async def test_carts_and_claims_live_under_the_city_prefix(redis: Redis, city: str) -> None:
    consumer = Consumer(redis, city)
    ada = new_id()
    await consumer.store.set_quantity(ada, new_id(), 1)
    event = order_placed(new_id(), new_id())
    await consumer.deliver(event)

    keys = sorted([key.decode() async for key in redis.scan_iter(match=f"{city}:*")])
    ordered = f"{city}:cart:ordered:{event.data['order_id']}"
    assert keys == sorted([f"{city}:cart:user:{ada}", f"{city}:cart:inbox:cart:{event.id}", ordered])
    assert 0 < await redis.ttl(ordered) <= CLAIM_LIFETIME_SECONDS


async def test_an_order_that_arrives_late_leaves_what_was_added_since(redis: Redis, city: str) -> None:
    """The shopper filled the cart again before the event came: only the ordered lines go."""
    consumer = Consumer(redis, city)
    ada, cup, jug = new_id(), new_id(), new_id()
    await consumer.store.set_quantity(ada, cup, 1)
    event = order_placed(ada, cup, 1)
    await consumer.store.set_quantity(ada, cup, 3)
    await consumer.store.set_quantity(ada, jug, 1)

    await consumer.deliver(event)

    assert await consumer.store.quantities(ada) == {cup: 2, jug: 1}


async def test_an_orders_lines_leave_once_whether_orders_or_the_event_takes_them_out(redis: Redis, city: str) -> None:
    consumer = Consumer(redis, city)
    ada, cup = new_id(), new_id()
    await consumer.store.set_quantity(ada, cup, 1)
    event = order_placed(ada, cup, 1)
    await handlers.remove_ordered(ada, event.data["order_id"], {cup: 1}, store=consumer.store)
    assert await consumer.store.quantities(ada) == {}
    await consumer.store.set_quantity(ada, cup, 1)  # the shopper wants another

    await consumer.deliver(event)  # the event of that first order, after

    assert await consumer.store.quantities(ada) == {cup: 1}
    assert await consumer.store.remove_ordered(ada, event.data["order_id"], {cup: 1}) is False


async def test_orders_taking_lines_out_of_one_cart_at_once_lose_no_change(redis: Redis, city: str) -> None:
    store = CartStore(redis, f"{city}:cart:")
    ada, cup, jug = new_id(), new_id(), new_id()
    await store.set_quantity(ada, cup, 50)
    await store.set_quantity(ada, jug, 1)

    taken = await asyncio.gather(*(store.remove_ordered(ada, new_id(), {cup: 1}) for _ in range(30)))

    assert taken == [True] * 30
    assert await store.quantities(ada) == {cup: 20, jug: 1}
