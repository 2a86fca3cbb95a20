"""A protected route answers who may not use it before it judges the request (API.md): no token
is a 401 and a customer on an admin route a 403, whatever the body; only a caller the route
admits hears that its body is not JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from chassis import auth
from chassis.health import Readiness
from gateway.app import create_api
from gateway.ratelimit import RateLimiter, Verdict
from gateway.settings import GatewaySettings
from gateway.upstreams import Upstreams
from tests.support import AUDIENCE, ISSUER, Tokens, free_port, serving_http

NOT_JSON = b"{bad"
TOKENS = Tokens()


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    settings = GatewaySettings(service="gateway", http_port=free_port(), mtls="off")
    upstreams = Upstreams(None, None, None, None, None, None, None, None, None)
    limiter = RateLimiter(None, "unused:")  # type: ignore[arg-type]
    limiter.hit_fast = lambda *args: Verdict(True, 10, 10, 1)  # type: ignore[method-assign]
    api = create_api(settings, Readiness(), upstreams, TOKENS.verifier(), limiter)
    async with serving_http(api, settings.http_port) as url:
        yield url


async def send(base_url: str, method: str, path: str, token: str | None) -> tuple[int, dict[str, str], dict]:
    headers = {"Content-Type": "application/json", "Idempotency-Key": "k1"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http, http.request(method, base_url + path, data=NOT_JSON,
                                                             headers=headers) as answer:
        return answer.status, dict(answer.headers), await answer.json(content_type=None)


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/api/v1/cart/items/p1"), ("POST", "/api/v1/orders"), ("POST", "/api/v1/admin/products"),
])
async def test_no_token_and_a_body_that_is_not_json_is_a_401(base_url: str, method: str, path: str) -> None:
    for token in (None, "not-a-token"):
        status, headers, problem = await send(base_url, method, path, token)
        assert status == 401, problem
        assert headers["WWW-Authenticate"] == "Bearer"
        assert headers["Content-Type"] == "application/problem+json"


async def test_a_customer_sending_an_admin_route_a_body_that_is_not_json_gets_a_403(base_url: str) -> None:
    status, _, problem = await send(base_url, "POST", "/api/v1/admin/products", TOKENS.sign("u1"))
    assert status == 403, problem


async def test_a_caller_the_route_admits_hears_that_its_body_is_not_json(base_url: str) -> None:
    for path, token in [("/api/v1/admin/products", TOKENS.sign("a1", "admin")), ("/api/v1/cart/items/p1", TOKENS.sign("u1"))]:
        status, _, problem = await send(base_url, "POST" if "admin" in path else "PUT", path, token)
        assert status == 400, problem
        assert problem["detail"].startswith("the body is not valid JSON")


async def test_a_public_route_still_judges_its_request(base_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/api/v1/products?page=0") as answer:
        assert answer.status == 422


async def test_a_token_identity_cannot_be_asked_about_is_a_503_not_the_callers_401() -> None:
    """A signing key not known yet (a cold start, a rotation) while identity is down: the token
    may well be valid, so the client is told to try again, not to log in again."""
    async def identity_down() -> dict:
        raise ConnectionError("identity is down")

    settings = GatewaySettings(service="gateway", http_port=free_port(), mtls="off")
    limiter = RateLimiter(None, "unused:")  # type: ignore[arg-type]
    limiter.hit_fast = lambda *args: Verdict(True, 10, 10, 1)  # type: ignore[method-assign]
    verifier = auth.TokenVerifier(identity_down, issuer=ISSUER, audience=AUDIENCE)
    api = create_api(settings, Readiness(), Upstreams(None, None, None, None, None, None, None, None, None),
                     verifier, limiter)
    async with serving_http(api, settings.http_port) as url:
        status, headers, problem = await send(url, "PUT", "/api/v1/cart/items/p1", TOKENS.sign("u1"))

    assert status == 503 and headers["Retry-After"] == "1", problem
    assert "identity is unavailable" in problem["detail"] and "WWW-Authenticate" not in headers
