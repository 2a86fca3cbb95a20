"""The runner with the city's real services (identity, catalog, gateway) over mTLS."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.request import Request, urlopen

from tests.cli.conftest import City

TOPOLOGY = Path(__file__).resolve().parents[2] / "deploy" / "topology.toml"


def test_up_creates_the_first_admin_who_can_log_in_at_the_gateway(city: City) -> None:
    started = city.agora(
        "up", "--detach", "--timeout", "60", AGORA_TOPOLOGY=str(TOPOLOGY), AGORA_SERVICES="identity,catalog,gateway"
    )
    assert started.returncode == 0, started.stderr

    shown = re.search(r"admin: (\S+) / (\S+)", started.stdout)
    assert shown, started.stdout
    email, password = shown.groups()
    gateway = f"http://127.0.0.1:{city.env['AGORA_GATEWAY_PORT']}"
    assert gateway in started.stdout
    login = Request(
        f"{gateway}/api/v1/auth/login",
        data=json.dumps({"email": email, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urlopen(login, timeout=10) as response:
        assert response.status == 200 and json.load(response)["access_token"]
    assert password not in "".join(path.read_text() for path in city.home.rglob("*") if path.suffix == ".log")
    assert {entry["name"] for entry in city.status()["services"]} == {"identity", "catalog", "gateway"}
