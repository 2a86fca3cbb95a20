"""`agora chaos stop|start`: a service or an embedded server taken away on purpose stays away
until the operator brings it back, on the same ports and with the same data."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import urlopen

import asyncpg
import pytest

from tests.cli.conftest import City, alive, wait_for

TOPOLOGY = Path(__file__).resolve().parents[2] / "deploy" / "topology.toml"


def entry(city: City, section: str, name: str) -> dict:
    return next(item for item in city.state()[section] if item["name"] == name)


def reported(city: City, section: str, name: str) -> dict:
    return next(item for item in city.status()[section] if item["name"] == name)


def answers(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def test_a_stopped_service_stays_stopped_until_started(city: City) -> None:
    assert city.agora("up", "--detach", "--timeout", "30").returncode == 0
    before = entry(city, "services", "tinybeta")

    stopped = city.agora("chaos", "stop", "tinybeta")

    assert stopped.returncode == 0, stopped.stderr
    assert not alive(before["pid"])
    shown = reported(city, "services", "tinybeta")
    assert shown["pid"] is None and not shown["healthy"] and shown["stopped"]
    # Longer than the supervisor's first restart delay (0.5 s): nothing brings it back.
    assert not wait_for(lambda: answers(before["http"]) or entry(city, "services", "tinybeta")["pid"], timeout=1.5)
    table = " ".join(city.agora("status").stdout.split())  # the title may wrap
    assert "stopped" in table and "degraded, 1 not healthy" in table

    started = city.agora("chaos", "start", "tinybeta", "--timeout", "30")

    assert started.returncode == 0, started.stderr
    after = entry(city, "services", "tinybeta")
    assert after["ready"] and after["pid"] not in (None, before["pid"])
    assert (after["http"], after["grpc"]) == (before["http"], before["grpc"])
    shown = reported(city, "services", "tinybeta")
    assert shown["healthy"] and not shown["stopped"]


def test_embedded_servers_stop_and_start_on_the_same_port_with_the_same_data(city: City) -> None:
    assert city.agora("up", "--detach", "--timeout", "30").returncode == 0
    servers = {name: entry(city, "infra", name) for name in ("postgres", "redis")}

    for name, before in servers.items():
        stopped = city.agora("chaos", "stop", name)
        assert stopped.returncode == 0, stopped.stderr
        assert not alive(before["pid"])
        shown = reported(city, "infra", name)
        assert shown["pid"] is None and not shown["healthy"] and shown["stopped"]

    # A stopped server is no crash: the supervisor leaves it down.
    assert not wait_for(lambda: any(entry(city, "infra", name)["pid"] for name in servers), timeout=1.0)

    for name, before in servers.items():
        started = city.agora("chaos", "start", name, "--timeout", "30")
        assert started.returncode == 0, started.stderr
        after = entry(city, "infra", name)
        assert after["pid"] not in (None, before["pid"]) and after["url"] == before["url"]
        assert reported(city, "infra", name)["healthy"]

    superuser = (city.home / "secrets" / "postgres.password").read_text().strip()
    url = servers["postgres"]["url"].replace("postgres@", f"postgres:{superuser}@")
    databases = asyncio.run(_databases(url))
    assert f"{city.env['AGORA_CITY']}_tinyalpha" in databases  # made before the stop: same data directory


async def _databases(url: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        return {row["datname"] for row in await connection.fetch("SELECT datname FROM pg_database")}
    finally:
        await connection.close()


@pytest.fixture
def external_smtp() -> Iterator[str]:
    """Something listening, enough for the runner to take it as an external SMTP server."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield f"smtp://127.0.0.1:{listener.getsockname()[1]}"


def test_external_and_unknown_servers_are_refused_in_one_line(city: City, external_smtp: str) -> None:
    city.env.update(AGORA_SMTP_URL=external_smtp, AGORA_SERVICES="tinygate")  # no database: starts fast
    assert city.agora("up", "--detach", "--timeout", "30").returncode == 0

    for command, name, expected in (
        ("stop", "smtp", "AGORA_SMTP_URL"),
        ("start", "smtp", "AGORA_SMTP_URL"),
        ("stop", "nosuch", "no service or server 'nosuch'"),
    ):
        refused = city.agora("chaos", command, name)
        assert refused.returncode == 1
        assert expected in refused.stderr and refused.stderr.count("\n") == 1, refused.stderr
        assert "Traceback" not in refused.stderr


def probe(address: str, path: str) -> tuple[int, dict]:
    """(status, JSON body) of a GET on a service's admin port; (0, {}) when nothing answers."""
    try:
        with urlopen(f"http://{address}{path}", timeout=5) as response:
            return response.status, json.load(response)
    except HTTPError as error:
        with error:
            return error.code, json.load(error)
    except OSError:
        return 0, {}


def test_a_real_service_is_unready_naming_postgres_while_it_is_stopped_and_ready_again_after(city: City) -> None:
    """identity, a real service with its own database: its /readyz follows Postgres (503 naming
    it while it is stopped, 200 once it is back, with no restart), and /healthz stays 200."""
    city.env.update(AGORA_TOPOLOGY=str(TOPOLOGY), AGORA_SERVICES="identity")
    started = city.agora("up", "--detach", "--timeout", "60")
    assert started.returncode == 0, started.stderr
    identity = entry(city, "services", "identity")
    assert probe(identity["http"], "/readyz") == (200, {"status": "ready"})

    stopped = city.agora("chaos", "stop", "postgres")
    assert stopped.returncode == 0, stopped.stderr
    try:
        unready = (0, {})

        def reports_postgres_down() -> bool:
            nonlocal unready
            unready = probe(identity["http"], "/readyz")
            return unready[0] == 503

        # Each readiness check has 1 s to answer.
        assert wait_for(reports_postgres_down, timeout=10), unready
        assert unready == (503, {"status": "unavailable", "failing": ["postgres"]})
        assert probe(identity["http"], "/healthz") == (200, {"status": "ok"})
        assert not reported(city, "services", "identity")["healthy"]
    finally:
        restarted = city.agora("chaos", "start", "postgres", "--timeout", "30")
    assert restarted.returncode == 0, restarted.stderr

    assert wait_for(lambda: probe(identity["http"], "/readyz") == (200, {"status": "ready"}), timeout=20), \
        probe(identity["http"], "/readyz")
    assert reported(city, "services", "identity")["healthy"]
    assert entry(city, "services", "identity")["pid"] == identity["pid"]  # the same process: no restart
