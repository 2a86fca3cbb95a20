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
    """Adds a delay or a failure rate to what the service already suffers, for `seconds` (until
    cleared if None); a fault already in force keeps its own end. Returns the new faults."""
    faults = current(directory).get(service, dict(_NONE))
    until = time.time() + seconds if seconds else None
    if delay_ms is not None:
        faults.update(delay_ms=delay_ms, delay_until=until)
    if fail_rate is not None:
        faults.update(fail_rate=fail_rate, fail_until=until)
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
    active, now = {}, time.time()
    for path in sorted(directory.glob("*.json")):
        try:
            faults = {**_NONE, **json.loads(path.read_text())}
        except (OSError, ValueError, TypeError):
            continue
        for fault in ("delay", "fail"):
            if faults[f"{fault}_until"] is not None and faults[f"{fault}_until"] <= now:
                faults.update({_AMOUNT[fault]: 0.0, f"{fault}_until": None})
        if faults["delay_ms"] > 0 or faults["fail_rate"] > 0:
            active[path.stem] = faults
    return active


_NONE: dict[str, Any] = {"delay_ms": 0.0, "delay_until": None, "fail_rate": 0.0, "fail_until": None}
_AMOUNT = {"delay": "delay_ms", "fail": "fail_rate"}
