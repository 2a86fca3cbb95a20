"""The fork server: services forked from one interpreter that imported the chassis once, and yet
children of the supervisor, each with its own environment, output, process group and exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_forked_service_is_the_askers_child_with_its_own_environment_and_status(tmp_path: Path) -> None:
    driven = subprocess.run(
        [sys.executable, "-m", "tests.cli.fork_driver", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert driven.returncode == 0, driven.stderr
    seen = json.loads(driven.stdout)
    first = json.loads((tmp_path / "first.json").read_text())

    assert first["pid"] == seen["first"]
    assert seen["first_parent"] == seen["driver"], "the supervisor must be able to wait for it"
    assert first["own_process_group"]
    assert first["preloaded"], "the chassis was imported before the fork"
    assert first["name"] == "__main__"
    assert first["value"] == "first"
    assert first["inherited"] is None, "only the environment it was given"
    assert first["argv"] == []
    assert first["cmdline"] == f"{sys.executable} -P -m forkprobe", "ps shows what it would have been started as"
    assert "probe says hello" in (tmp_path / "first.log").read_text()

    assert seen["first_status"] == 3
    assert seen["second_status"] == -9
    assert seen["server_gone"]
    assert seen["after_close"], "a closed fork server asks the caller to start the service itself"
