"""The edge application: chassis edge behaviour, then authentication and limits, then routes."""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from collections.abc import Awaitable, Callable

from agora.identity.v1 import identity_pb2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from chassis import auth
from chassis.health import Readiness
from chassis.http import Problem, create_app, problem_response
from gateway.microcache import MicroCache
from gateway.openapi import document_problems
from gateway.ratelimit import RateLimiter
from gateway.routes import admin, cart, catalog, identity, orders
from gateway.security import EdgeGuard, refusal
from gateway.settings import GatewaySettings
from gateway.upstream import as_problem
from gateway.upstreams import Upstreams

DESCRIPTION = (
    "Agora's edge API (API.md). Errors are RFC 9457 problem documents; every response carries "
    "X-Request-Id, traceparent and RateLimit-* headers; /healthz, /readyz and /metrics are never rate limited."
)


Handler = Callable[[Request, Exception], Awaitable[Response]]


def _authenticated_first(judge: Handler) -> Handler:
    """A request's fault (a body that is not JSON, a bad parameter) is answered only to a caller
    the route admits; anyone else gets its 401 or 403 (`security.refusal`)."""

    async def answer(request: Request, error: Exception) -> Response:
        return await refusal(request) or await judge(request, error)

    return answer


def create_api(
    settings: GatewaySettings,
    readiness: Readiness,
    upstreams: Upstreams,
    verifier: auth.TokenVerifier,
    limiter: RateLimiter,
    stopping: asyncio.Event | None = None,
) -> FastAPI:
    """`stopping` is set when the gateway begins to stop (long-lived answers then end)."""
    guard = EdgeGuard(verifier=verifier, limiter=limiter, per_minute=settings.rate_limit_per_minute)
    app = create_app(
        service="gateway", readiness=readiness, title="Agora", version="1.0.0", description=DESCRIPTION, guard=guard
    )
    # Onto the app's own router rather than included: FastAPI matches an included router's routes
    # twice per request (to pick the router, then within it), and that cost more than the rest
    # of the routing. Routes are matched in order, one by one, so the catalog reads that most
    # requests are for go first, ahead of the probes and the documentation.
    catalog_cache = MicroCache(settings.catalog_cache_seconds)
    app.router.routes[:0] = catalog.router(upstreams, catalog_cache).routes
    for routes in (identity.router(upstreams, limiter, settings), cart.router(upstreams),
                   orders.router(upstreams, stopping or asyncio.Event(), orders.OpenFollows(settings.follows_per_user)),
                   admin.router(upstreams, catalog_cache)):
        app.router.routes.extend(routes.routes)
    document_problems(app)
    for judged_by_the_request in (RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(
            judged_by_the_request, _authenticated_first(app.exception_handlers[judged_by_the_request])
        )

    @app.exception_handler(405)
    async def method_not_allowed(request: Request, _: Exception) -> Response:
        """`Allow` lists every method of the resource (RFC 9110), not only those of the first route
        matched, the documentation's and the pictures' too; HEAD wherever GET is (the edge answers it)."""
        allowed: set[str] = set()
        for route in app.router.routes:
            if route.matches(request.scope)[0] is not Match.NONE:
                allowed |= getattr(route, "methods", None) or {"GET"}  # a mount serves files
        if "GET" in allowed:
            allowed.add("HEAD")
        return problem_response(405, f"{request.method} is not allowed on {request.url.path}",
                                headers={"Allow": ", ".join(sorted(allowed))})

    @app.get("/.well-known/jwks.json", tags=["identity"], summary="Public keys that verify access tokens")
    async def jwks() -> Response:
        try:
            response = await upstreams.identity.GetJwks(identity_pb2.GetJwksRequest())
        except Exception as error:
            raise as_problem(error, "identity") from None
        body = json.dumps(auth.jwks_from_json(response.jwks_json))
        return Response(body, media_type="application/json", headers={"Cache-Control": "public, max-age=60"})

    @app.get("/static/products/{sku}.svg", include_in_schema=False)
    async def product_picture(sku: str) -> Response:
        """The starter catalog's pictures (its `image_url`s): a drawn card with the product's SKU."""
        if not _PICTURE_SKU.fullmatch(sku):
            raise Problem(404, "no such picture")
        return Response(_picture(sku.upper()), media_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=86400"})

    return app


_PICTURE_SKU = re.compile(r"^[a-z]{3}-[0-9]{4}$")


def _picture(sku: str) -> str:
    hue = zlib.crc32(sku.encode()) % 360
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400" viewBox="0 0 400 400">'
        f'<rect width="400" height="400" fill="hsl({hue},45%,85%)"/>'
        f'<circle cx="200" cy="170" r="90" fill="hsl({hue},45%,60%)"/>'
        f'<text x="200" y="330" font-family="sans-serif" font-size="36" text-anchor="middle" '
        f'fill="hsl({hue},45%,25%)">{sku}</text></svg>'
    )
