"""Recommendations' composition root."""

from __future__ import annotations

from pathlib import Path

from agora.recommendations.v1 import recommendations_pb2_grpc

from chassis import messaging, runtime
from chassis.periodic import Periodic
from chassis.settings import ServiceSettings
from recommendations import handlers
from recommendations.api import RecommendationsApi

MIGRATIONS = {"recommendations": Path(__file__).parent / "migrations", "messaging": messaging.MIGRATIONS}


class RecommendationsSettings(ServiceSettings):
    pass


async def build(app: runtime.ServiceApp) -> None:
    # Three connections: it follows other services' events and answers reads; a backlog (a new
    # city's catalog, a replay) would otherwise hold ten Postgres backends of 15 MB each open.
    pool = await app.postgres(MIGRATIONS, max_size=3)
    app.add_grpc_service(
        recommendations_pb2_grpc.add_RecommendationsServiceServicer_to_server, RecommendationsApi(pool)
    )
    await app.consume(dict(handlers.SUBSCRIPTIONS), messaging.PostgresInbox(pool))
    app.add_worker(Periodic("forget-old-orders", 3600, lambda: handlers.forget_old_orders(pool)))
