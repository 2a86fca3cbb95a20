"""Clearing the cart on OrderPlaced, through the real Redis inbox the consumer uses."""

from __future__ import annotations

from redis.asyncio import Redis

from cart import handlers
from cart.store import CartStore
from chassis.messaging import Envelope, RedisInbox
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

    assert await consumer.deliver(order_placed(ada, cup)) is True

    assert await consumer.store.quantities(ada) == {}
    assert await consumer.store.quantities(bob) == {cup: 1}


async def test_a_redelivered_order_never_clears_a_cart_filled_again(redis: Redis, city: str) -> None:
    consumer = Consumer(redis, city)
    ada, cup, jug = new_id(), new_id(), new_id()
    await consumer.store.set_quantity(ada, cup, 2)
    event = order_placed(ada, cup)
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
    assert keys == sorted([f"{city}:cart:user:{ada}", f"{city}:cart:inbox:cart:{event.id}"])
