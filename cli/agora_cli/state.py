"""AGORA_HOME/city.json: what the supervisor runs, for `status`, `down` and `logs` to read."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from agora_cli.config import Home
from agora_cli.processes import same_process_alive


def write(home: Home, state: dict[str, Any]) -> None:
    """Atomic: a reader sees the previous state or the new one, never half of it."""
    partial = home.state_file.with_suffix(".json.part")
    partial.write_text(json.dumps(state, indent=2))
    os.replace(partial, home.state_file)


def read(home: Home) -> dict[str, Any] | None:
    try:
        return json.loads(home.state_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def supervisor_alive(state: dict[str, Any]) -> bool:
    supervisor = state.get("supervisor", {})
    return same_process_alive(supervisor.get("pid"), supervisor.get("create_time"))


def remove(home: Home) -> None:
    Path(home.state_file).unlink(missing_ok=True)
