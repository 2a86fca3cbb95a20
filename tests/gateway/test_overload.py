"""An open breaker or a full bulkhead in front of a service is a 503 with Retry-After, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from chassis import auth
from chassis.health import Readiness
from chassis.resilience import BreakerOpen, BulkheadFull
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


@pytest.fixture(params=[BreakerOpen("orders"), BulkheadFull("orders")], ids=["breaker-open", "bulkhead-full"])
async def base_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    settings = GatewaySettings(service="gateway", http_port=free_port())
    upstreams = Upstreams(None, None, None, Refusing(request.param), None, None, None, None, None)
    limiter = RateLimiter(None, "unused:")  # type: ignore[arg-type]
    limiter.hit_fast = lambda *args: Verdict(True, 10, 10, 1)  # type: ignore[method-assign]
    api = create_api(settings, Readiness(), upstreams, AnyToken(), limiter)
    async with serving_http(api, settings.http_port) as url:
        yield url


async def test_placing_an_order_behind_a_refusing_guard_is_a_503(base_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.post(
        f"{base_url}/api/v1/orders", json={"shipping_address": ADDRESS, "payment": {"token": "tok_visa"}},
        headers={"Authorization": "Bearer anything", "Idempotency-Key": "k1"},
    ) as answer:
        assert answer.status == 503
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.headers["Retry-After"]
