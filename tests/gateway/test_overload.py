"""An open breaker or a full bulkhead in front of a service is a 503 with Retry-After, never a 500;
so is a service that answered for one behind it, which the 503 names."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest

from chassis import auth
from chassis.health import Readiness
from chassis.resilience import BreakerOpen, BulkheadFull
from chassis.resilience.grpc_errors import UNAVAILABLE_DEPENDENCY_KEY
from gateway.app import create_api
from gateway.ratelimit import RateLimiter, Verdict
from gateway.settings import GatewaySettings
from gateway.upstreams import Upstreams
from tests.support import free_port, serving_http

ADDRESS = {"name": "A", "line1": "1 Road", "city": "X", "postal_code": "1", "country": "GB"}


class Refusing:
    """Stands where the guarded orders client sits: the guard refuses before any call is made."""

    def __init__(self, error: Exception):
        self.error = error

    async def PlaceOrder(self, request, timeout=None):  # type: ignore[no-untyped-def]
        raise self.error


class AnyToken(auth.TokenVerifier):
    def __init__(self) -> None:
        pass

    async def verify(self, token: str) -> auth.Principal:
        return auth.Principal(user_id="u1", roles=frozenset({"customer"}))


@contextlib.asynccontextmanager
async def gateway_whose_orders_raises(error: Exception) -> AsyncIterator[str]:
    settings = GatewaySettings(service="gateway", http_port=free_port())
    upstreams = Upstreams(None, None, None, Refusing(error), None, None, None, None, None)
    limiter = RateLimiter(None, "unused:")  # type: ignore[arg-type]
    limiter.hit_fast = lambda *args: Verdict(True, 10, 10, 1)  # type: ignore[method-assign]
    api = create_api(settings, Readiness(), upstreams, AnyToken(), limiter)
    async with serving_http(api, settings.http_port) as url:
        yield url


async def place_order(base_url: str) -> tuple[int, dict[str, str], dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.post(
        f"{base_url}/api/v1/orders", json={"shipping_address": ADDRESS, "payment": {"token": "tok_visa"}},
        headers={"Authorization": "Bearer anything", "Idempotency-Key": "k1"},
    ) as answer:
        return answer.status, dict(answer.headers), await answer.json(content_type=None)


@pytest.mark.parametrize("refusal", [BreakerOpen("orders"), BulkheadFull("orders")], ids=["breaker-open", "bulkhead-full"])
async def test_placing_an_order_behind_a_refusing_guard_is_a_503(refusal: Exception) -> None:
    async with gateway_whose_orders_raises(refusal) as base_url:
        status, headers, problem = await place_order(base_url)
    assert status == 503
    assert headers["Content-Type"] == "application/problem+json"
    assert headers["Retry-After"]
    assert problem["detail"] == "orders is unavailable; try again shortly"


async def test_a_503_names_the_service_behind_orders_that_is_down() -> None:
    cart_down = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata((UNAVAILABLE_DEPENDENCY_KEY, "cart")),
        "cart is unavailable; try again",
    )
    async with gateway_whose_orders_raises(cart_down) as base_url:
        status, headers, problem = await place_order(base_url)
    assert status == 503 and headers["Retry-After"]
    assert problem["detail"] == "cart is unavailable; try again shortly"
