"""Identity's composition root: `build(app)` wires the use cases to their dependencies by name."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agora.identity.v1 import identity_pb2_grpc
from pydantic import Field

from chassis import auth, messaging, runtime
from chassis.periodic import Periodic
from chassis.settings import ServiceSettings
from identity import handlers
from identity.api import IdentityApi
from identity.domain import GetJwks
from identity.passwords import PasswordHasher
from identity.repository import Database
from identity.tokens import KeyVault, load_or_create_kek

MIGRATIONS = {"identity": Path(__file__).parent / "migrations", "messaging": messaging.MIGRATIONS}


class IdentitySettings(ServiceSettings):
    access_token_ttl_seconds: int = Field(default=900, gt=0, le=24 * 3600)
    refresh_token_ttl_days: int = Field(default=30, gt=0, le=365)
    # Where the key that seals the signing keys lives; by default under AGORA_HOME/secrets.
    signing_kek_file: Path | None = None

    @property
    def kek_path(self) -> Path:
        return self.signing_kek_file or self.home / "secrets" / "identity-signing.kek"


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def build(app: runtime.ServiceApp, *, clock: Callable[[], datetime] = _utc_now) -> None:
    settings = app.settings
    if not isinstance(settings, IdentitySettings):
        raise TypeError("identity needs its own settings: runtime.run(IdentitySettings, build)")
    pool = await app.postgres(MIGRATIONS)
    db = Database(pool)
    vault = KeyVault(load_or_create_kek(settings.kek_path))
    await handlers.ensure_signing_key(db=db, vault=vault, clock=clock)
    hasher = PasswordHasher()
    await hasher.prepare()
    handle = message_handler(
        db=db,
        hasher=hasher,
        vault=vault,
        outbox=await app.outbox(pool),
        clock=clock,
        policy=handlers.TokenPolicy(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            access_lifetime=timedelta(seconds=settings.access_token_ttl_seconds),
            refresh_lifetime=timedelta(days=settings.refresh_token_ttl_days),
        ),
    )
    app.add_worker(Periodic("forget-expired-sessions", 3600, lambda: handlers.forget_expired_sessions(db=db, clock=clock)))
    app.verify_tokens(
        auth.TokenVerifier(lambda: handle(GetJwks()), issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    )
    app.add_grpc_service(identity_pb2_grpc.add_IdentityServiceServicer_to_server, IdentityApi(handle))


def message_handler(**dependencies: Any) -> Callable[[Any], Awaitable[Any]]:
    """One callable for every command: each handler gets the dependencies its signature names."""
    injected = {command: _inject(handler, dependencies) for command, handler in handlers.HANDLERS.items()}

    async def handle(command: Any) -> Any:
        return await injected[type(command)](command)

    return handle


def _inject(handler: Callable[..., Any], dependencies: dict[str, Any]) -> Callable[..., Any]:
    wanted = inspect.signature(handler).parameters
    return functools.partial(handler, **{name: value for name, value in dependencies.items() if name in wanted})
