"""`agora dashboard` against the real city: traffic placed through the edge shows in the gateway's
row and the services' rows it reaches, and a failing catalog is not called "ok"."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import City

pytestmark = pytest.mark.e2e


async def dashboard_under_traffic(city: City) -> tuple[dict[str, dict[str, Any]], list[int]]:
    """`agora dashboard --json --interval 1`, with product searches sent through the edge until
    it has printed: its rows by service, and the statuses the searches got."""
    reading = asyncio.create_task(asyncio.to_thread(city.agora, "dashboard", "--json", "--interval", "1"))
    statuses = []
    async with aiohttp.ClientSession() as http:
        while not reading.done():
            # A new query each time: the gateway may answer a repeated one without asking catalog.
            search = {"q": f"lamp {uuid.uuid4().hex[:8]}", "page_size": "3"}
            async with http.get(f"{city.base_url}/api/v1/products", params=search) as answer:
                statuses.append(answer.status)
    result = await reading
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["interval_seconds"] == 1
    return {row["service"]: row for row in document["services"]}, statuses


async def test_the_gateway_row_shows_the_traffic_and_every_service_is_read(city: City) -> None:
    rows, statuses = await dashboard_under_traffic(city)

    assert set(statuses) == {200}
    running = {entry["name"] for entry in city.status()["services"]}
    assert set(rows) == running
    assert next(iter(rows)) == "gateway"  # the edge first
    gateway = rows["gateway"]
    assert gateway["protocol"] == "http"
    assert gateway["requests_per_second"] > 1, gateway
    assert gateway["failed_share"] == 0, gateway
    assert 0 < gateway["p99_seconds"] < 10, gateway
    assert "5xx" not in gateway["verdict"]
    assert rows["catalog"]["protocol"] == "grpc"
    assert rows["catalog"]["requests_per_second"] > 0, rows["catalog"]
    for row in rows.values():
        assert row["down"] == 0 and row["ready"] == row["instances"] >= 1, row
        assert math.isfinite(row["requests_per_second"]) and row["requests_per_second"] >= 0, row
        assert row["events_per_second"] >= 0 and row["event_failures_per_second"] >= 0, row
        assert row["outbox_unpublished"] >= 0 and row["dead_letters"] >= 0, row
        assert isinstance(row["verdict"], str) and row["verdict"], row


async def test_with_catalog_failing_its_row_or_the_gateways_says_something_is_wrong(city: City) -> None:
    failing = city.agora("chaos", "fail", "catalog", "1", "--for", "30")
    assert failing.returncode == 0, failing.stderr
    try:
        await asyncio.sleep(0.6)  # the chassis re-reads fault settings twice a second
        rows, statuses = await dashboard_under_traffic(city)
    finally:
        city.agora("chaos", "clear", "catalog")
    await until_catalog_answers(city)

    assert 503 in statuses
    gateway, catalog = rows["gateway"], rows["catalog"]
    assert gateway["verdict"] != "ok" and catalog["verdict"] != "ok", (gateway, catalog)
    # The edge answered 503s, or stopped calling catalog once its circuit opened; catalog failed
    # its calls, or is named as the one whose circuit is open.
    assert "5xx" in gateway["verdict"] or "circuit to catalog" in gateway["verdict"], gateway
    assert "errors" in catalog["verdict"] or "circuit from gateway open" in catalog["verdict"], catalog


async def until_catalog_answers(city: City, timeout: float = 30.0) -> None:
    """The other tests share this city: wait until the gateway's circuit to catalog is closed again."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as http:
        while asyncio.get_running_loop().time() < deadline:
            async with http.get(f"{city.base_url}/api/v1/products", params={"q": uuid.uuid4().hex}) as answer:
                if answer.status == 200:
                    return
            await asyncio.sleep(0.5)
    raise AssertionError("catalog did not answer through the edge again after the fault was cleared")
