"""Runs the real `agora` command against a test city of stand-in services (fake_services/)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from agora_cli.processes import same_process_alive
from tests.conftest import unique_city

FAKE_SERVICES = Path(__file__).parent / "fake_services"
AGORA = Path(sys.executable).parent / "agora"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class City:
    home: Path
    env: dict[str, str]

    def agora(self, *args: str, timeout: float = 90, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(AGORA), *args], env={**self.env, **extra_env}, capture_output=True, text=True, timeout=timeout
        )

    def state(self) -> dict[str, Any]:
        return json.loads((self.home / "city.json").read_text())

    def status(self) -> dict[str, Any]:
        result = self.agora("status", "--json")
        return json.loads(result.stdout)

    def processes(self) -> list[tuple[int, float | None]]:
        """(pid, start time) of every process the city runs: supervisor, services, embedded servers."""
        try:
            city = self.state()
        except FileNotFoundError:
            return []
        entries = [city["supervisor"], *city["services"], *city["infra"]]
        return [(entry["pid"], entry.get("create_time")) for entry in entries if entry.get("pid")]


@pytest.fixture
def agora_home() -> Iterator[Path]:
    """A fresh AGORA_HOME outside pytest's own temporary directory, which pytest keeps closed
    (0700) to other users: the embedded Postgres runs as an unprivileged user and must reach it."""
    parent = Path(tempfile.mkdtemp(prefix="agora-cli-test-"))
    yield parent / "home"
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def city(agora_home: Path) -> Iterator[City]:
    env = {
        **os.environ,
        "AGORA_HOME": str(agora_home),
        "AGORA_CITY": unique_city(),
        "AGORA_TOPOLOGY": str(FAKE_SERVICES / "topology.toml"),
        "AGORA_GATEWAY_PORT": str(free_port()),
        "PYTHONPATH": str(FAKE_SERVICES),
    }
    for variable in ("AGORA_DATABASE_URL", "AGORA_NATS_URL", "AGORA_REDIS_URL", "AGORA_SMTP_URL", "AGORA_SERVICES"):
        env.pop(variable, None)
    city = City(agora_home, env)
    yield city
    leftovers = city.processes()
    city.agora("down", timeout=60)
    for pid, started in leftovers:
        # Matched by start time too: a pid the system reused belongs to someone else.
        if same_process_alive(pid, started):
            os.kill(pid, signal.SIGKILL)


def wait_for(condition, timeout: float = 20.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
