"""Inventory's composition root."""

from __future__ import annotations

import functools
from pathlib import Path

from agora.inventory.v1 import inventory_pb2_grpc

from chassis import auth, messaging, runtime
from chassis.identity_keys import identity_verifier
from chassis.settings import ServiceSettings
from inventory import handlers
from inventory.api import InventoryApi

MIGRATIONS = {"inventory": Path(__file__).parent / "migrations", "messaging": messaging.MIGRATIONS}


class InventorySettings(ServiceSettings):
    pass


async def build(app: runtime.ServiceApp, *, verifier: auth.TokenVerifier | None = None) -> None:
    """`verifier` replaces the one fed by identity's JWKS (tests sign their own tokens)."""
    pool = await app.postgres(MIGRATIONS)
    outbox = await app.outbox(pool)
    app.verify_tokens(verifier or identity_verifier(app))
    app.add_grpc_service(inventory_pb2_grpc.add_InventoryServiceServicer_to_server, InventoryApi(pool))
    await app.consume(
        {
            event_type: functools.partial(handler, outbox=outbox)
            for event_type, handler in handlers.SUBSCRIPTIONS.items()
        },
        messaging.PostgresInbox(pool),
    )
