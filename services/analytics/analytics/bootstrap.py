"""Analytics' composition root."""

from __future__ import annotations

import functools
from pathlib import Path

from agora.analytics.v1 import analytics_pb2_grpc

from analytics import handlers, replay
from analytics.api import AnalyticsApi
from chassis import auth, messaging, runtime
from chassis.identity_keys import identity_verifier
from chassis.settings import ServiceSettings

MIGRATIONS = {"analytics": Path(__file__).parent / "migrations", "messaging": messaging.MIGRATIONS}


class AnalyticsSettings(ServiceSettings):
    pass


async def build(app: runtime.ServiceApp, *, verifier: auth.TokenVerifier | None = None) -> None:
    """`verifier` replaces the one fed by identity's JWKS (tests sign their own tokens)."""
    # Three connections: it follows other services' events and answers reads; a backlog (a new
    # city's catalog, a replay) would otherwise hold ten Postgres backends of 15 MB each open.
    pool = await app.postgres(MIGRATIONS, max_size=3)
    app.verify_tokens(verifier or identity_verifier(app))
    bus = await app.bus()
    rebuild = None
    if isinstance(bus, messaging.NatsBus):
        history = replay.JetStreamHistory(bus)
        rebuild = functools.partial(replay.replay, app.settings.dsn, history, handlers.SUBSCRIPTIONS)
    app.add_grpc_service(analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server, AnalyticsApi(pool, rebuild=rebuild))
    await app.consume(dict(handlers.SUBSCRIPTIONS), messaging.PostgresInbox(pool))
