"""Typed settings every service process reads once, at start-up, from its environment.

The runner (`agora up`) sets these; see docs/runtime-contract.md. A missing or malformed value
stops the process with one clear line instead of failing later, deep inside a request.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SettingsT = TypeVar("SettingsT", bound="ServiceSettings")


class ServiceSettings(BaseSettings):
    """What the chassis needs. A service subclasses it to add its own fields under its own prefix."""

    model_config = SettingsConfigDict(env_prefix="AGORA_", extra="ignore", frozen=True)

    service: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    instance: int = 0
    city: str = Field(default="agora", pattern=r"^[a-z][a-z0-9]*$")
    home: Path = Path(".agora")
    host: str = "127.0.0.1"
    grpc_port: int | None = None
    http_port: int
    dsn: str | None = None
    nats_url: str = "nats://127.0.0.1:4222"
    # Where the NATS server answers this service: pull deliveries, publish acks, API replies. The
    # embedded NATS gives each service its own (`_INBOX_<service>`) and lets it hear no other.
    nats_inbox_prefix: str = "_INBOX"
    bus: Literal["nats", "rabbitmq"] = "nats"
    rabbitmq_url: str | None = None
    redis_url: str | None = None
    smtp_url: str | None = None
    peers: dict[str, list[str]] = Field(default_factory=dict)
    allowed_callers: Annotated[frozenset[str], NoDecode] = frozenset()
    tls_dir: Path | None = None
    mtls: Literal["on", "off"] = "on"
    chaos_dir: Path | None = None
    jwt_issuer: str = "agora-identity"
    jwt_audience: str = "agora"
    shutdown_grace_seconds: float = 10.0
    # Off on one machine, where callers dial every instance's address. Behind a DNS name (a
    # Kubernetes headless Service), gRPC resolves it again only when a connection ends, so a
    # server that ends its connections now and then lets callers find the pods added since.
    grpc_max_connection_age_seconds: float = 0.0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("allowed_callers", mode="before")
    @classmethod
    def _parse_callers(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(name for name in value.split(",") if name)
        return value

    @property
    def mtls_enabled(self) -> bool:
        return self.mtls == "on" and self.tls_dir is not None

    def peer(self, service: str) -> list[str]:
        """Addresses of a dependency's instances; a missing one is a deployment error."""
        try:
            return self.peers[service]
        except KeyError:
            raise LookupError(f"{self.service} has no address for {service!r}: is it in `calls`?") from None


def load(settings_class: type[SettingsT] = ServiceSettings) -> SettingsT:  # type: ignore[assignment]
    """Reads the settings or exits with one line naming each bad variable."""
    try:
        return settings_class()
    except ValidationError as error:
        problems = "; ".join(
            f"{'_'.join(str(part) for part in e['loc']).upper()}: {e['msg']}" for e in error.errors()
        )
        print(f"invalid settings for {settings_class.__name__}: {problems}", file=sys.stderr)
        raise SystemExit(2) from None
