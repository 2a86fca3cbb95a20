"""docs/events.md is generated from the contracts and the subscription tables, and kept fresh."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "event-map.py"


def event_map() -> ModuleType:
    spec = importlib.util.spec_from_file_location("event_map", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(output: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--output", str(output)], capture_output=True, text=True, cwd=ROOT
    )


def test_the_committed_event_map_is_what_the_code_and_contracts_say() -> None:
    result = check(ROOT / "docs" / "events.md")
    assert result.returncode == 0, result.stderr


def test_a_stale_event_map_is_caught(tmp_path: Path) -> None:
    stale = tmp_path / "events.md"
    stale.write_text((ROOT / "docs" / "events.md").read_text().replace("recommendations", "nobody"))

    assert check(stale).returncode == 1


def test_orders_and_registrations_fan_out_to_independent_consumers() -> None:
    consumers = event_map().consumed()

    assert {"analytics", "notifications", "recommendations", "shipping"} <= set(
        consumers["agora.orders.OrderConfirmed.v1"]
    )
    assert {"analytics", "notifications"} <= set(consumers["agora.identity.UserRegistered.v1"])


def test_every_consumed_event_has_a_publisher() -> None:
    module = event_map()
    assert set(module.consumed()) <= set(module.published())
