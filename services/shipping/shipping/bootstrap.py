"""Shipping's composition root."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from agora.shipping.v1 import shipping_pb2_grpc
from pydantic import Field

from chassis import auth, db, messaging, runtime
from chassis.identity_keys import identity_verifier
from chassis.settings import ServiceSettings
from shipping import carrier_fake, handlers
from shipping.api import ShippingApi
from shipping.carrier import CarrierAdapter
from shipping.dispatcher import Dispatcher

MIGRATIONS = {
    "shipping": Path(__file__).parent / "migrations",
    "carrier": carrier_fake.MIGRATIONS,
    "messaging": messaging.MIGRATIONS,
}


class ShippingSettings(ServiceSettings):
    dispatch_delay_seconds: float = Field(default=3.0, ge=0)
    """`AGORA_DISPATCH_DELAY_SECONDS`: how long after the booking the carrier takes the parcel."""


async def build(app: runtime.ServiceApp, *, verifier: auth.TokenVerifier | None = None) -> None:
    """`verifier` replaces identity's JWKS (tests sign their own tokens)."""
    settings = app.settings
    assert isinstance(settings, ShippingSettings)
    pool = await app.postgres(MIGRATIONS)
    carrier = CarrierAdapter(await _carrier_fake(app, settings))
    outbox = await app.outbox(pool)
    delay = timedelta(seconds=settings.dispatch_delay_seconds)
    await app.consume(
        handlers.subscriptions(carrier=carrier, outbox=outbox, dispatch_delay=delay), messaging.PostgresInbox(pool)
    )
    app.add_worker(Dispatcher(pool, carrier=carrier, outbox=outbox))
    app.verify_tokens(verifier or identity_verifier(app))
    app.add_grpc_service(
        shipping_pb2_grpc.add_ShippingServiceServicer_to_server, ShippingApi(pool, carrier=carrier, outbox=outbox)
    )


async def _carrier_fake(app: runtime.ServiceApp, settings: ShippingSettings) -> carrier_fake.CarrierFake:
    # The carrier is another system and gets its own connections: a dispatch holding one of ours
    # while it waits on the carrier must never leave the carrier without one.
    pool = await db.connect(settings.dsn or "", min_size=1, max_size=4)
    app.on_shutdown(pool.close)
    return carrier_fake.CarrierFake(pool)
