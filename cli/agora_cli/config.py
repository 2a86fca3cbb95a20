"""The runner's own settings, read once from its environment, and the layout of AGORA_HOME."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from agora_cli.errors import AgoraError
from agora_cli.logrotation import DEFAULT_MAX_MEGABYTES

_CITY = re.compile(r"^[a-z][a-z0-9]*$")
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Home:
    """Where one city keeps its state, logs, secrets, certificates and embedded data."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def mail(self) -> Path:
        return self.root / "mail"

    @property
    def chaos(self) -> Path:
        return self.root / "chaos"

    @property
    def state_file(self) -> Path:
        return self.root / "city.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "supervisor.lock"

    def log_of(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def create(self) -> None:
        for directory in (self.root, self.logs, self.tls, self.mail, self.chaos):
            directory.mkdir(parents=True, exist_ok=True)
        self.secrets.mkdir(mode=0o700, exist_ok=True)


@dataclass(frozen=True)
class Config:
    city: str
    home: Home
    gateway_port: int
    mtls: bool
    services_filter: str | None = None
    database_url: str | None = None
    nats_url: str | None = None
    redis_url: str | None = None
    smtp_url: str | None = None
    bus: str = "nats"
    rabbitmq_url: str | None = None
    log_max_bytes: int = int(DEFAULT_MAX_MEGABYTES * 1024 * 1024)
    passthrough: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Config:
        env = dict(os.environ if environ is None else environ)
        city = env.get("AGORA_CITY", "agora")
        if not _CITY.match(city):
            raise AgoraError(f"AGORA_CITY must match [a-z][a-z0-9]*, got {city!r}")
        port_text = env.get("AGORA_GATEWAY_PORT", "8080")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise AgoraError(f"AGORA_GATEWAY_PORT must be a port number, got {port_text!r}")
        bus = env.get("AGORA_BUS", "nats")
        if bus not in ("nats", "rabbitmq"):
            raise AgoraError(f"AGORA_BUS must be nats or rabbitmq, got {bus!r}")
        if bus == "rabbitmq" and not env.get("AGORA_RABBITMQ_URL"):
            raise AgoraError("AGORA_BUS=rabbitmq needs AGORA_RABBITMQ_URL")
        log_max_megabytes = _positive_number(env, "AGORA_LOG_MAX_MB", DEFAULT_MAX_MEGABYTES)
        mtls = env.get("AGORA_MTLS", "on")
        if mtls not in ("on", "off"):
            raise AgoraError(f"AGORA_MTLS must be on or off, got {mtls!r}")
        return cls(
            city=city,
            home=home_from_env(env),
            gateway_port=int(port_text),
            mtls=mtls == "on",
            services_filter=env.get("AGORA_SERVICES") or None,
            database_url=env.get("AGORA_DATABASE_URL") or None,
            nats_url=env.get("AGORA_NATS_URL") or None,
            redis_url=env.get("AGORA_REDIS_URL") or None,
            smtp_url=env.get("AGORA_SMTP_URL") or None,
            bus=bus,
            rabbitmq_url=env.get("AGORA_RABBITMQ_URL") or None,
            log_max_bytes=max(1, int(log_max_megabytes * 1024 * 1024)),
            passthrough={key: value for key, value in env.items() if key not in _NOT_PASSED_ON},
        )


def _positive_number(env: dict[str, str], name: str, default: float) -> float:
    text = env.get(name) or str(default)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise AgoraError(f"{name} must be a positive number, got {text!r}")
    return value


def home_from_env(environ: dict[str, str] | None = None) -> Home:
    env = os.environ if environ is None else environ
    root = Path(env.get("AGORA_HOME", ".agora")).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise AgoraError(f"AGORA_HOME {root} is not a directory")
    return Home(root)


# Secrets and runner-only settings stay with the runner; everything else reaches every service.
# Services keep their bytecode: without cached .pyc files each start recompiles every import.
_NOT_PASSED_ON = frozenset(
    {
        "AGORA_DATABASE_URL",
        "AGORA_ADMIN_PASSWORD",
        "AGORA_SERVICES",
        "AGORA_TOPOLOGY",
        "AGORA_GATEWAY_PORT",
        "AGORA_LOG_MAX_MB",
        "PYTHONDONTWRITEBYTECODE",
    }
)
