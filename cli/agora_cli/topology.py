"""Reads deploy/topology.toml, the one declaration of which services exist and who calls whom."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from agora_cli.errors import AgoraError

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_REPO_TOPOLOGY = Path(__file__).resolve().parents[2] / "deploy" / "topology.toml"


@dataclass(frozen=True)
class Service:
    name: str
    grpc: bool = False
    public_http: bool = False
    database: bool = False
    redis: bool = False
    smtp: bool = False
    calls: tuple[str, ...] = ()
    reads_history: bool = False
    replicas: int = 1


def topology_path() -> Path:
    """`AGORA_TOPOLOGY` if set, else the repository's deploy/topology.toml."""
    override = os.environ.get("AGORA_TOPOLOGY")
    return Path(override).resolve() if override else _REPO_TOPOLOGY


def load(path: Path) -> dict[str, Service]:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise AgoraError(f"topology not found: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise AgoraError(f"invalid topology {path}: {error}") from None
    services = {}
    for name, table in raw.get("services", {}).items():
        if not _NAME.match(name):
            raise AgoraError(f"invalid service name {name!r} in {path}")
        services[name] = Service(
            name=name,
            grpc=bool(table.get("grpc", False)),
            public_http=table.get("http") == "public",
            database=bool(table.get("database", False)),
            redis=bool(table.get("redis", False)),
            smtp=bool(table.get("smtp", False)),
            calls=tuple(table.get("calls", ())),
            reads_history=bool(table.get("history", False)),
            replicas=int(table.get("replicas", 1)),
        )
    for service in services.values():
        unknown = set(service.calls) - services.keys()
        if unknown:
            raise AgoraError(f"{service.name} calls unknown services {sorted(unknown)} in {path}")
    return services


def select(services: dict[str, Service], names: str | None) -> dict[str, Service]:
    """Only the services named in `names` (comma-separated, e.g. `AGORA_SERVICES`); all if empty."""
    if not names:
        return services
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in services]
    if unknown:
        raise AgoraError(f"AGORA_SERVICES names unknown services: {', '.join(unknown)}")
    return {name: service for name, service in services.items() if name in wanted}


def callers_of(services: dict[str, Service], name: str) -> list[str]:
    return sorted(other.name for other in services.values() if name in other.calls)
