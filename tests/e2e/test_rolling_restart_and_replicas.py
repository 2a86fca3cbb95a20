"""Independent deployment and scaling, as a client sees them: `agora restart` replaces a service
under steady load without one failed request, and `--replicas` instances all take calls."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.request import urlopen

import psutil
import pytest

from tests.e2e.conftest import City
from tests.support import free_port

pytestmark = pytest.mark.e2e

CLIENTS = 6


class SteadyLoad:
    """Clients that GET pages of the shop in a loop over keep-alive connections, as browsers do.

    `http.client` retries nothing: a connection the server closes under a request, a reset or a
    non-200 answer is counted as a failure. Every listing asks for another page, so the gateway's
    micro-cache cannot answer for catalog.
    """

    def __init__(self, base_url: str, product_ids: list[str]):
        self._address = base_url.removeprefix("http://")
        self._product_ids = product_ids
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.answers: Counter[int] = Counter()
        self.failures: list[str] = []
        self._threads = [threading.Thread(target=self._client, args=(number,)) for number in range(CLIENTS)]

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def total(self) -> int:
        with self._lock:
            return sum(self.answers.values())

    def _client(self, number: int) -> None:
        host, port = self._address.split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=15)
        sent = 0
        while not self._stop.is_set():
            sent += 1
            if sent % 3:
                path = f"/api/v1/products?page_size=3&page={(sent * CLIENTS + number) % 200 + 1}"
            else:
                path = f"/api/v1/products/{self._product_ids[(sent + number) % len(self._product_ids)]}"
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                with self._lock:
                    self.failures.append(f"GET {path}: {type(error).__name__}: {error}")
                continue
            with self._lock:
                self.answers[status] += 1
                if status != 200:
                    self.failures.append(f"GET {path}: {status} {body[:200]!r}")
        connection.close()


def service_pids(status: dict, service: str) -> list[int]:
    return [entry["pid"] for entry in status["services"] if entry["name"] == service]


def test_rolling_restarts_of_catalog_and_gateway_fail_no_request(city: City) -> None:
    with urlopen(f"{city.base_url}/api/v1/products?page_size=5", timeout=10) as response:
        product_ids = [product["id"] for product in json.load(response)["items"]]
    before = city.status()

    with SteadyLoad(city.base_url, product_ids) as load:
        for service in ("catalog", "gateway"):
            start = load.total()
            restarted = city.agora("restart", service, "--timeout", "60", check=False)
            assert restarted.returncode == 0, restarted.stderr
            assert load.total() > start + 20, f"too little load while {service} restarted"

    after = city.status()
    assert not load.failures, f"{len(load.failures)} failed of {load.total()}: {load.failures[:5]}"
    assert load.answers == {200: load.total()}
    for service in ("catalog", "gateway"):
        assert set(service_pids(after, service)).isdisjoint(service_pids(before, service))
        assert all(entry["healthy"] for entry in after["services"] if entry["name"] == service)


@pytest.fixture
def small_city() -> Iterator[City]:
    """Identity, two catalogs and the gateway, in a home of their own (the session city runs one catalog)."""
    home = Path(tempfile.mkdtemp(prefix="agora-e2e-replicas-"))
    port = free_port()
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("AGORA_")},
        "AGORA_HOME": str(home),
        "AGORA_GATEWAY_PORT": str(port),
        "AGORA_SERVICES": "identity,catalog,gateway",
        "AGORA_RATE_LIMIT_PER_MINUTE": "100000",
    }
    small = City(home=home, base_url=f"http://127.0.0.1:{port}", env=env)
    try:
        started = small.agora("up", "--detach", "--replicas", "catalog=2", check=False, timeout=180)
        assert started.returncode == 0, started.stdout + started.stderr
        yield small
    finally:
        state = home / "city.json"
        pids = []
        if state.exists():
            city_state = json.loads(state.read_text())
            pids = [entry["pid"] for entry in [city_state["supervisor"], *city_state["services"], *city_state["infra"]]]
        stopped = small.agora("down", check=False)
        shutil.rmtree(home, ignore_errors=True)
        survivors = [pid for pid in pids if pid and psutil.pid_exists(pid)
                     and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        assert stopped.returncode == 0 and not survivors, (stopped.stderr, survivors)


_CALLS = re.compile(r'^agora_grpc_server_requests_total\{([^}]*)\} (\S+)$', re.MULTILINE)


def catalog_calls(admin_address: str) -> float:
    """gRPC calls this catalog process served, by its own /metrics."""
    with urlopen(f"http://{admin_address}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(count) for labels, count in _CALLS.findall(text)
               if 'service="catalog"' in labels and "Product" in labels)


def test_every_replica_serves_calls_balanced_by_the_client(small_city: City) -> None:
    catalogs = [entry for entry in small_city.status()["services"] if entry["name"] == "catalog"]
    assert len(catalogs) == 2 and len({entry["grpc"] for entry in catalogs}) == 2
    before = [catalog_calls(entry["http"]) for entry in catalogs]

    requests = 40
    for page in range(1, requests + 1):  # a page each: the gateway's micro-cache answers none of them
        with urlopen(f"{small_city.base_url}/api/v1/products?page_size=2&page={page}", timeout=10) as response:
            assert response.status == 200

    served = [catalog_calls(entry["http"]) - earlier for entry, earlier in zip(catalogs, before, strict=True)]
    assert sum(served) >= requests
    # Round-robin: each instance takes about half; far from all-on-one.
    assert min(served) >= requests / 4, served

