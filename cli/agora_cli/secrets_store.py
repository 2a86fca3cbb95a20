"""Generated passwords, and URLs that carry one, kept under AGORA_HOME/secrets, readable by the
owner only."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def password(directory: Path, name: str) -> tuple[str, bool]:
    """The stored password for `name`, created if missing; and whether it was just created."""
    path = directory / f"{name}.password"
    try:
        return path.read_text().strip(), False
    except FileNotFoundError:
        pass
    value = secrets.token_hex(24)
    write_private(path, value)
    return value, True


def keep_url(directory: Path, name: str, url: str) -> None:
    """Keeps the URL of an external server as given, password included, for the commands that
    reach it later from another shell (`agora dlq` on a RabbitMQ city)."""
    write_private(directory / f"{name}.url", url)


def kept_url(directory: Path, name: str) -> str | None:
    try:
        return (directory / f"{name}.url").read_text()
    except FileNotFoundError:
        return None


def write_private(path: Path, value: str) -> None:
    """Writes `value` to a file only its owner may read, as it is made (never briefly wider)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(value)
