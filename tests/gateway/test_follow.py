"""Following an order at the edge (`GET /api/v1/orders/{id}/events`) with a real orders service
behind the gateway: each status change is pushed as it commits, and a follow that orders broke
off, because it restarted, is taken up again without losing the change made meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from agora.orders.v1 import orders_pb2_grpc

from chassis.grpc import open_channel
from chassis.health import Readiness
from chassis.resilience import Guard, load_policies
from gateway.app import create_api
from gateway.ratelimit import RateLimiter
from gateway.routes.orders import FOLLOW_REFUSED, GATEWAY_STOPPING
from gateway.settings import GatewaySettings
from gateway.upstreams import Upstreams
from tests.orders.conftest import confirm, orders_service
from tests.orders.test_api import fill_cart
from tests.orders.test_watch import dispatched
from tests.support import Tokens, free_port, serving_http

RESUMING = ": orders unavailable, retrying"


@contextlib.asynccontextmanager
async def gateway_before(
    orders_port: int, tokens: Tokens, stopping: asyncio.Event | None = None, *, follows_per_user: int = 10
) -> AsyncIterator[str]:
    settings = GatewaySettings(service="gateway", http_port=free_port(), mtls="off", follows_per_user=follows_per_user)
    channel = open_channel(settings, "orders", Guard("orders", load_policies().for_dependency("orders")),
                           addresses=[f"127.0.0.1:{orders_port}"])
    upstreams = Upstreams(None, None, None, orders_pb2_grpc.OrdersServiceStub(channel), None, None, None, None, None)
    api = create_api(settings, Readiness(), upstreams, tokens.verifier(), RateLimiter(None, "unused:"), stopping)  # type: ignore[arg-type]
    try:
        async with serving_http(api, settings.http_port) as url:
            yield url
    finally:
        await channel.close()


async def lines_of(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The stream's lines that say something: each status change's data, and comments."""
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("data: "):
            yield json.loads(line.removeprefix("data: "))["status"]
        elif line.startswith(":"):
            yield line


async def followed_until_orders_stops(
    stack: contextlib.AsyncExitStack, database: str, home: Path, port: int, tokens: Tokens
) -> tuple[Any, AsyncIterator[str]]:
    """An order placed and followed at the edge, then orders stopped: the follow waits to be
    taken up again. Answers the order and the stream's lines still to come."""
    url = await stack.enter_async_context(gateway_before(port, tokens))
    http = await stack.enter_async_context(aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {tokens.sign('ada')}"}, timeout=aiohttp.ClientTimeout(total=30)))
    async with orders_service(database, home, grpc_port=port, tokens=tokens) as first:
        fill_cart(first, "ada", (first.shop.add_product("Espresso cup", 1250), 1))
        order = await first.place("ada")
        response = await stack.enter_async_context(http.get(f"{url}/api/v1/orders/{order.order_id}/events"))
        assert response.status == 200 and response.content_type == "text/event-stream"
        stream = lines_of(response)
        assert await anext(stream) == "PENDING"
    assert await anext(stream) == RESUMING
    return order, stream


async def test_a_follow_outlives_a_restart_of_orders_and_misses_no_change(fresh_database: str, tmp_path: Path):
    port, tokens = free_port(), Tokens()
    async with contextlib.AsyncExitStack() as stack:
        order, stream = await followed_until_orders_stops(stack, fresh_database, tmp_path, port, tokens)
        async with asyncpg.create_pool(fresh_database, min_size=1, max_size=1) as pool:
            await confirm(pool, order.order_id)  # while no instance of orders runs
        async with orders_service(fresh_database, tmp_path, grpc_port=port, tokens=tokens) as second:
            assert await next_status(stream) == "CONFIRMED"
            await dispatched(second, order.order_id)
            assert await next_status(stream) == "SHIPPED"
            assert [line async for line in stream] == [], "the stream ends after a terminal status"


async def test_a_follow_orders_refuses_to_take_up_again_ends_for_the_client_to_follow_anew(
    fresh_database: str, tmp_path: Path
):
    """The follow is taken up with the token it began with; once orders refuses it (expired, or
    signed by a key no longer published), trying again each second for ten minutes would tell
    the client nothing but "orders unavailable" while its order moves on."""
    port, tokens = free_port(), Tokens()
    async with contextlib.AsyncExitStack() as stack:
        _, stream = await followed_until_orders_stops(stack, fresh_database, tmp_path, port, tokens)
        async with orders_service(fresh_database, tmp_path, grpc_port=port, tokens=Tokens()):
            async with asyncio.timeout(10):
                rest = [line async for line in stream]
        assert rest[-1] == FOLLOW_REFUSED.decode().strip() and set(rest[:-1]) <= {RESUMING}


async def next_status(stream: AsyncIterator[str]) -> str:
    """The next status sent, past the comments of further attempts to follow again."""
    async for line in stream:
        if line != RESUMING:
            return line
    raise AssertionError("the stream ended")


async def test_a_stopping_gateway_ends_its_follows_at_once_for_clients_to_follow_again(fresh_database: str, tmp_path: Path):
    """Else each follow would hold the gateway's stop (a rolling restart) for its whole grace."""
    port, tokens, stopping = free_port(), Tokens(), asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(gateway_before(port, tokens, stopping))
        http = await stack.enter_async_context(aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {tokens.sign('ada')}"}, timeout=aiohttp.ClientTimeout(total=30)))
        service = await stack.enter_async_context(orders_service(fresh_database, tmp_path, grpc_port=port, tokens=tokens))
        fill_cart(service, "ada", (service.shop.add_product("Espresso cup", 1250), 1))
        order = await service.place("ada")
        response = await stack.enter_async_context(http.get(f"{url}/api/v1/orders/{order.order_id}/events"))
        stream = lines_of(response)
        assert await anext(stream) == "PENDING"

        stopping.set()
        async with asyncio.timeout(2):
            assert [line async for line in stream] == [GATEWAY_STOPPING.decode().strip()]


async def test_a_user_holds_at_most_the_allowed_follows_open_and_a_closed_one_frees_its_place(
    fresh_database: str, tmp_path: Path
):
    """A follow holds a socket and a stream to orders for up to ten minutes at the cost of one
    request: uncapped, one account could take the gateway's file descriptors from everyone."""
    port, tokens = free_port(), Tokens()
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(gateway_before(port, tokens, follows_per_user=2))
        service = await stack.enter_async_context(orders_service(fresh_database, tmp_path, grpc_port=port, tokens=tokens))
        timeout = aiohttp.ClientTimeout(total=30)
        ada = await stack.enter_async_context(aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {tokens.sign('ada')}"}, timeout=timeout))
        grace = await stack.enter_async_context(aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {tokens.sign('grace')}"}, timeout=timeout))
        fill_cart(service, "ada", (service.shop.add_product("Espresso cup", 1250), 1))
        mine = (await service.place("ada")).order_id
        fill_cart(service, "grace", (service.shop.add_product("Teapot", 3900), 1))
        hers = (await service.place("grace")).order_id

        async with ada.get(f"{url}/api/v1/orders/00000000-0000-4000-8000-000000000000/events") as unknown:
            assert unknown.status == 404  # a refused follow holds no place
        first = await stack.enter_async_context(ada.get(f"{url}/api/v1/orders/{mine}/events"))
        second = await stack.enter_async_context(ada.get(f"{url}/api/v1/orders/{mine}/events"))
        assert first.status == second.status == 200
        assert await anext(lines_of(second)) == "PENDING"

        async with ada.get(f"{url}/api/v1/orders/{mine}/events") as third:
            assert third.status == 429
            assert third.content_type == "application/problem+json"
            assert third.headers["Retry-After"] == "10"
            assert "at most 2 follows" in (await third.json())["detail"]
        async with grace.get(f"{url}/api/v1/orders/{hers}/events") as others:
            assert others.status == 200  # the cap is each user's own

        first.close()  # the client goes away; the gateway notices and counts the follow out
        async with asyncio.timeout(5):
            while True:
                async with ada.get(f"{url}/api/v1/orders/{mine}/events") as again:
                    if again.status == 200:
                        assert await anext(lines_of(again)) == "PENDING"
                        break
                    assert again.status == 429
                await asyncio.sleep(0.1)
