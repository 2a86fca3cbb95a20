"""Gateway's composition root."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from grpc_health.v1 import health_pb2, health_pb2_grpc

from chassis import runtime
from chassis.http import UvicornServer
from chassis.identity_keys import identity_verifier
from gateway.app import create_api
from gateway.ratelimit import RateLimiter
from gateway.settings import GatewaySettings
from gateway.upstreams import Upstreams

# Without these the gateway cannot serve anything useful; the rest only degrade pages.
ESSENTIAL = ("identity", "catalog")


def _serving(name: str, health: health_pb2_grpc.HealthStub) -> Callable[[], Awaitable[None]]:
    """Ready while `name` answers SERVING: it says NOT_SERVING while it cannot serve (chassis.grpc)."""

    async def check() -> None:
        answer = await health.Check(health_pb2.HealthCheckRequest())
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            raise ConnectionError(f"{name} is not serving")

    return check


async def build(app: runtime.ServiceApp) -> None:
    settings: GatewaySettings = app.settings  # type: ignore[assignment]
    redis = await app.redis()
    upstreams = Upstreams.connect(app)
    for name in ESSENTIAL:
        if name in settings.peers:
            app.add_readiness_check(name, _serving(name, health_pb2_grpc.HealthStub(app.channel(name))))
    limiter = RateLimiter(redis, prefix=f"{settings.city}:gateway:")
    app.add_worker(limiter)
    stopping = asyncio.Event()
    app.on_stopping(stopping.set)
    api = create_api(settings, app.readiness, upstreams, identity_verifier(app), limiter, stopping)
    app.serve_http(UvicornServer(api, settings.host, settings.http_port, graceful_seconds=settings.shutdown_grace_seconds,
                                 trusted_proxies=settings.trusted_proxies))


__all__ = ["GatewaySettings", "build"]
