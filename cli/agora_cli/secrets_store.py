"""Generated passwords kept under AGORA_HOME/secrets, readable by the owner only."""

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
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(value)
    return value, True
