"""AGORA_HOME/city.json: what the supervisor runs, for `status`, `down` and `logs` to read."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from agora_cli.config import Home
from agora_cli.errors import AgoraError
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


def running(home: Home) -> dict[str, Any]:
    """The state of the city whose supervisor runs in `home`; an AgoraError that says why not."""
    city = read(home)
    if city is None or not supervisor_alive(city):
        raise AgoraError(not_running(home, city))
    return city


def not_running(home: Home, city: dict[str, Any] | None) -> str:
    """Why no supervisor answers in `home`, naming what a killed one left behind."""
    if city and (orphans := leftovers(city)):
        return (
            f"the supervisor of the city in {home.root} is gone, but {len(orphans)} of its processes "
            "still run; `agora down` stops them"
        )
    return f"no city is running in {home.root}"


def leftovers(city: dict[str, Any]) -> list[dict[str, Any]]:
    """The services and servers of `city` that still run, matched by pid and start time."""
    return [
        entry
        for entry in [*city["services"], *city["infra"]]
        if same_process_alive(entry["pid"], entry.get("create_time"))
    ]


def remove(home: Home) -> None:
    Path(home.state_file).unlink(missing_ok=True)
