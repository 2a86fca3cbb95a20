"""Payments' composition root."""

from __future__ import annotations

from pathlib import Path

from agora.payments.v1 import payments_pb2_grpc
from pydantic import AliasChoices, Field

from chassis import auth, db, messaging, runtime
from chassis.identity_keys import identity_verifier
from chassis.settings import ServiceSettings
from payments import handlers, provider_fake
from payments.api import PaymentsApi
from payments.provider import ProviderAdapter

MIGRATIONS = {
    "payments": Path(__file__).parent / "migrations",
    "provider": provider_fake.MIGRATIONS,
    "messaging": messaging.MIGRATIONS,
}


class PaymentsSettings(ServiceSettings):
    provider_latency_ms: float = Field(
        default=5.0, ge=0, validation_alias=AliasChoices("PAYMENTS_PROVIDER_LATENCY_MS", "provider_latency_ms")
    )


async def build(app: runtime.ServiceApp, *, verifier: auth.TokenVerifier | None = None) -> None:
    """`verifier` replaces identity's JWKS (tests sign their own tokens)."""
    settings = app.settings
    assert isinstance(settings, PaymentsSettings)
    pool = await app.postgres(MIGRATIONS)
    provider = ProviderAdapter(await _provider_fake(app, settings))
    outbox = await app.outbox(pool)
    await app.consume(handlers.subscriptions(provider=provider, outbox=outbox), messaging.PostgresInbox(pool))
    app.verify_tokens(verifier or identity_verifier(app))
    app.add_grpc_service(payments_pb2_grpc.add_PaymentsServiceServicer_to_server, PaymentsApi(pool))


async def _provider_fake(app: runtime.ServiceApp, settings: PaymentsSettings) -> provider_fake.PaymentProviderFake:
    # The provider is another system and gets its own connections: a handler waiting on it while
    # holding one of ours must never leave it without one.
    pool = await db.connect(settings.dsn or "", min_size=1, max_size=4)
    app.on_shutdown(pool.close)
    return provider_fake.PaymentProviderFake(pool, latency_ms=settings.provider_latency_ms)
