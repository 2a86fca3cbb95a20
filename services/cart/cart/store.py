"""All of cart's Redis: one hash per user, `<city>:cart:user:<user_id>`, product id to quantity;
and a key per order whose lines left a cart, `<city>:cart:ordered:<order_id>`."""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from chassis.messaging.inbox import CLAIM_LIFETIME_SECONDS

# A cart nobody touches for this long is forgotten; every write starts the period again.
IDLE_SECONDS = 30 * 24 * 3600


# KEYS: the cart, the order's mark. ARGV: the mark's lifetime, then product id and quantity pairs.
# One script, so the mark and the lines change together, and a SetItem cannot slip in between
# reading a quantity and writing it back.
_REMOVE_ORDERED = """
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then return 0 end
for i = 2, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], -tonumber(ARGV[i + 1])) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 1
"""


class CartStore:
    def __init__(self, redis: Redis, prefix: str):
        self._redis = redis
        self._prefix = prefix
        self._remove_ordered = redis.register_script(_REMOVE_ORDERED)

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


    async def remove_ordered(self, user_id: str, order_id: str, lines: Mapping[str, int]) -> bool:
        """Lowers each line by what the order took (a line at 0 goes), once per order; False if
        this order's lines had left already."""
        return bool(await self._remove_ordered(**self._remove_ordered_call(user_id, order_id, lines)))

    async def queue_remove_ordered(
        self, pipe: Pipeline, user_id: str, order_id: str, lines: Mapping[str, int]
    ) -> None:
        """`remove_ordered` when `pipe`'s transaction executes."""
        await self._remove_ordered(**self._remove_ordered_call(user_id, order_id, lines), client=pipe)

    def _remove_ordered_call(self, user_id: str, order_id: str, lines: Mapping[str, int]) -> dict[str, list[object]]:
        pairs = [value for product_id, quantity in lines.items() for value in (product_id, quantity)]
        return {
            "keys": [self._key(user_id), f"{self._prefix}ordered:{order_id}"],
            "args": [CLAIM_LIFETIME_SECONDS, *pairs],
        }
