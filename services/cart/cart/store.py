"""All of cart's Redis: one hash per user, `<city>:cart:user:<user_id>`, product id to quantity."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

# A cart nobody touches for this long is forgotten; every write starts the period again.
IDLE_SECONDS = 30 * 24 * 3600


class CartStore:
    def __init__(self, redis: Redis, prefix: str):
        self._redis = redis
        self._prefix = prefix

    def _key(self, user_id: str) -> str:
        return f"{self._prefix}user:{user_id}"

    async def quantities(self, user_id: str) -> dict[str, int]:
        raw = await self._redis.hgetall(self._key(user_id))
        return {product_id.decode(): int(quantity) for product_id, quantity in raw.items()}

    async def set_quantity(self, user_id: str, product_id: str, quantity: int) -> None:
        """Sets a line; 0 removes it."""
        key = self._key(user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            if quantity:
                pipe.hset(key, product_id, quantity)
                pipe.expire(key, IDLE_SECONDS)
            else:
                pipe.hdel(key, product_id)
            await pipe.execute()

    async def clear(self, user_id: str) -> None:
        await self._redis.delete(self._key(user_id))

    def queue_clear(self, pipe: Pipeline, user_id: str) -> None:
        """Clears the cart when `pipe`'s transaction executes."""
        pipe.delete(self._key(user_id))
