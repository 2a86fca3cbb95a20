"""`agora chaos delay|fail` faults as the chassis reads them: each ends at its own time."""

from __future__ import annotations

from pathlib import Path

import pytest

from agora_cli import chaos
from chassis.chaos import ChaosSwitch


def test_each_fault_ends_at_its_own_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(chaos.time, "time", lambda: now[0])
    chaos.inject(tmp_path, "orders", delay_ms=100, seconds=5)
    chaos.inject(tmp_path, "orders", fail_rate=0.5)

    assert chaos.current(tmp_path) == {
        "orders": {"delay_ms": 100, "delay_until": 1005.0, "fail_rate": 0.5, "fail_until": None}}
    faults = ChaosSwitch(tmp_path, "orders").current()
    assert (faults.delaying(1004), faults.delaying(1006), faults.failing(1006)) == (True, False, True)

    now[0] = 1006.0  # the delay is over; the untimed failure stays until cleared
    assert chaos.current(tmp_path) == {
        "orders": {"delay_ms": 0.0, "delay_until": None, "fail_rate": 0.5, "fail_until": None}}
    chaos.inject(tmp_path, "orders", fail_rate=0.2, seconds=1)
    now[0] = 1008.0
    assert chaos.current(tmp_path) == {}
