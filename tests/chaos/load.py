"""Steady checkout load: many shoppers, each in a loop of fill the cart, place the order with an
Idempotency-Key, sometimes cancel it. Only the edge API (API.md), through `tests/e2e/shop.py`.

A place that fails (an error answer, a timeout, a refused connection: the city is being broken
on purpose) is retried with the same Idempotency-Key until it is answered or the load ends, as a
client must; whatever orders the shop accepted are recorded for the checkers.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from tests.e2e.shop import Client, new_product

DECLINED_TOKEN = "tok_chargeDeclined"


@dataclass
class Load:
    accepted: set[str] = field(default_factory=set)
    owners: dict[str, str] = field(default_factory=dict)
    """Order id -> the access token of the shopper who placed it."""
    attempts: int = 0
    cancels: int = 0
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class Shop:
    """The products the suite created (with the stock it set) and the signed-in shoppers."""

    base_url: str
    stock: dict[str, int]
    shoppers: list[str]
    """Access tokens."""


async def prepare(http: aiohttp.ClientSession, base_url: str, admin_email: str, admin_password: str, *,
                  shoppers: int, products: int, stock: int) -> Shop:
    admin = await Client(http, base_url).log_in(admin_email, admin_password)
    # Little stock on some products, so some orders are rejected out of stock and others race.
    quantities = [stock if index % 2 else max(1, stock // 20) for index in range(products)]
    created = {await new_product(admin, stock=quantity): quantity for quantity in quantities}
    signing_up = asyncio.Semaphore(4)  # Argon2 is CPU-bound: a queue, not a stampede

    async def sign_up() -> str:
        async with signing_up:
            return (await Client(http, base_url).sign_up()).token or ""

    return Shop(base_url, created, list(await asyncio.gather(*(sign_up() for _ in range(shoppers)))))


async def run(http: aiohttp.ClientSession, shop: Shop, until: asyncio.Event, load: Load, *,
              decline_share: float = 0.1, cancel_share: float = 0.15) -> None:
    """Every shopper buys until `until` is set."""
    await asyncio.gather(*(_shopper(Client(http, shop.base_url, token), list(shop.stock), until, load,
                                    decline_share, cancel_share) for token in shop.shoppers))


async def _shopper(client: Client, products: list[str], until: asyncio.Event, load: Load,
                   decline_share: float, cancel_share: float) -> None:
    rng = random.Random()
    while not until.is_set():
        product = rng.choice(products)
        if not await _answered(client, "PUT", f"/api/v1/cart/items/{product}", load, {200, 201},
                               json={"quantity": rng.randint(1, 2)}):
            continue
        key = uuid.uuid4().hex
        token = DECLINED_TOKEN if rng.random() < decline_share else "tok_visa"
        load.attempts += 1
        order_id = None
        while order_id is None and not until.is_set():
            try:
                answer = await client.place(key, token)
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:  # ValueError: a body not JSON
                await _failed(load, f"place {type(error).__name__}")
                continue
            if answer.status == 202:
                order_id = answer.body["order_id"]
                load.accepted.add(order_id)
                load.owners[order_id] = client.token or ""
            elif answer.status in (400, 409, 422):  # an empty cart, say: cleared by an earlier try
                await _failed(load, f"place {answer.status}")
                break
            else:
                await _failed(load, f"place {answer.status}")
        if order_id and rng.random() < cancel_share:
            await asyncio.sleep(rng.uniform(0, 0.5))
            load.cancels += 1
            for _ in range(5):  # as a customer would: again until answered
                if await _answered(client, "POST", f"/api/v1/orders/{order_id}/cancel", load, {202, 409}):
                    break


_UNAVAILABLE_RETRIES = 20
_UNAVAILABLE_PAUSE_SECONDS = 0.5


async def statuses(http: aiohttp.ClientSession, base_url: str, load: Load, *, sample: int = 60) -> dict[str, str]:
    """What the shop's API says of (a sample of) the accepted orders, each asked by its owner."""
    chosen = random.sample(sorted(load.owners), min(sample, len(load.owners)))

    async def status(order_id: str) -> tuple[str, str]:
        client = Client(http, base_url, load.owners[order_id])
        for _ in range(_UNAVAILABLE_RETRIES):
            answer = await client.request("GET", f"/api/v1/orders/{order_id}")
            if answer.status != 503:
                break
            # The edge's breaker to a service that was down is still open, or half-open and
            # letting only a couple of probes through: a client waits and asks again, as a 503
            # tells it to. Only an answer that stays 503 counts.
            await asyncio.sleep(_UNAVAILABLE_PAUSE_SECONDS)
        return order_id, answer.body["status"] if answer.status == 200 else f"HTTP {answer.status}"

    return dict(await asyncio.gather(*(status(order_id) for order_id in chosen)))


async def _answered(client: Client, method: str, path: str, load: Load, expected: set[int], **options) -> bool:
    try:
        answer = await client.request(method, path, **options)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:  # ValueError: a body not JSON
        await _failed(load, f"{method} {type(error).__name__}")
        return False
    if answer.status not in expected:
        await _failed(load, f"{method} {path.split('/')[3]} {answer.status}")
        return False
    return True


async def _failed(load: Load, kind: str) -> None:
    load.errors[kind] += 1
    await asyncio.sleep(0.2)  # a broken city answers fast; do not turn the load into a retry storm
