"""One whole city for the end-to-end tests: `agora up --detach` with the embedded defaults in
a temporary AGORA_HOME on free ports, shared by the session; `agora down` at the end, then a
check that no process it started is left."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from agora_cli.config import Home
from agora_cli.infra import operator_nats_url
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
AGORA = str(Path(sys.executable).parent / "agora")
ADMIN_EMAIL = "admin@agora.test"
ADMIN_PASSWORD = "admin-password-for-tests"


@dataclass
class City:
    home: Path
    base_url: str
    env: dict[str, str]
    admin_token: str | None = None  # one admin sign-in per session keeps clear of the login limit

    def agora(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([AGORA, *args], env=self.env, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout, check=check)

    def status(self) -> dict:
        return json.loads(self.agora("status", "--json").stdout)

    def nats_url(self) -> str:
        """The city's NATS, logged in as the operator: only a login may publish or read there."""
        return operator_nats_url(Home(self.home), next(e for e in self.status()["infra"] if e["name"] == "nats"))

    def pids(self) -> set[int]:
        status = self.status()
        return {entry["pid"] for entry in status["services"] + status["infra"] if entry.get("pid")}


def present_services() -> str:
    return ",".join(sorted(path.parent.name for path in ROOT.glob("services/*/pyproject.toml")))


def city_environment(home: Path, port: int, **extra: str) -> dict[str, str]:
    """The e2e city's environment: this process's own, minus any AGORA_ setting, plus `extra`."""
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("AGORA_")},
        "AGORA_HOME": str(home),
        "AGORA_GATEWAY_PORT": str(port),
        "AGORA_SERVICES": os.environ.get("AGORA_E2E_SERVICES", present_services()),
        "AGORA_ADMIN_EMAIL": ADMIN_EMAIL,
        "AGORA_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AGORA_DISPATCH_DELAY_SECONDS": "1",
        "AGORA_LOGIN_RATE_LIMIT_PER_MINUTE": "20",
        "AGORA_REGISTER_RATE_LIMIT_PER_MINUTE": "1000",
        "AGORA_RATE_LIMIT_PER_MINUTE": "100000",
        **extra,
    }


@contextmanager
def running_city(prefix: str = "agora-e2e-", **extra_env: str) -> Iterator[City]:
    """`agora up --detach` in a fresh home on a free gateway port; `agora down` afterwards, then a
    check that no process it started is left. `extra_env` adds to or overrides the environment."""
    # Not under pytest's own temp root: pytest makes that 0700 at every session start, and the
    # embedded Postgres runs as its own unprivileged user, which must be able to reach its data.
    home = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
    env = city_environment(home, port, **extra_env)
    city = City(home=home, base_url=f"http://127.0.0.1:{port}", env=env)
    started = city.agora("up", "--detach", check=False, timeout=180)
    if started.returncode != 0:
        city.agora("down", check=False)
        shutil.rmtree(home, ignore_errors=True)
    assert started.returncode == 0, started.stdout + started.stderr
    pids = city.pids()
    supervisor = json.loads((home / "city.json").read_text())["supervisor"]["pid"]
    try:
        yield city
    finally:
        stopped = city.agora("down", check=False)
        assert stopped.returncode == 0, stopped.stderr
        shutil.rmtree(home, ignore_errors=True)
        survivors = [pid for pid in [*pids, supervisor] if pid and psutil.pid_exists(pid)
                     and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        assert not survivors, f"processes left after agora down: {survivors}"


@pytest.fixture(scope="session")
def city() -> Iterator[City]:
    with running_city() as city:
        yield city
