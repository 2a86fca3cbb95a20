"""Fault injection switches: one JSON file per service in AGORA_CHAOS_DIR.

The chassis of every service re-reads `<service>.json` twice a second (chassis/chaos.py), so
`agora chaos delay|fail` takes effect within half a second, on every instance, with no restart.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def inject(
    directory: Path,
    service: str,
    *,
    delay_ms: float | None = None,
    fail_rate: float | None = None,
    seconds: float | None = None,
) -> dict[str, Any]:
    """Adds a delay or a failure rate to what the service already suffers; returns the new faults."""
    faults = current(directory).get(service, {"delay_ms": 0.0, "fail_rate": 0.0, "until": None})
    if delay_ms is not None:
        faults["delay_ms"] = delay_ms
    if fail_rate is not None:
        faults["fail_rate"] = fail_rate
    faults["until"] = time.time() + seconds if seconds else None
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{service}.json.part"
    partial.write_text(json.dumps(faults))
    os.replace(partial, directory / f"{service}.json")
    return faults


def clear(directory: Path, service: str | None = None) -> list[str]:
    """Removes the faults of one service, or of all; returns the services cleared."""
    paths = [directory / f"{service}.json"] if service else sorted(directory.glob("*.json"))
    cleared = [path.stem for path in paths if path.exists()]
    for path in paths:
        path.unlink(missing_ok=True)
    return cleared


def current(directory: Path) -> dict[str, dict[str, Any]]:
    """The faults in force, by service; expired ones are left out."""
    active = {}
    for path in sorted(directory.glob("*.json")):
        try:
            faults = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if faults.get("until") is None or faults["until"] > time.time():
            active[path.stem] = faults
    return active
