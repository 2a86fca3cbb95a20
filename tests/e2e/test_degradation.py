"""Graceful degradation: the product page stays up and fast when recommendations are slow or gone."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.e2e.conftest import City

pytestmark = pytest.mark.e2e


async def product_page(http: aiohttp.ClientSession, city: City, product_id: str) -> tuple[int, dict, float]:
    started = time.perf_counter()
    async with http.get(f"{city.base_url}/api/v1/products/{product_id}") as answer:
        body = await answer.json()
        return answer.status, body, time.perf_counter() - started


async def test_a_slow_recommendations_service_degrades_the_page_instead_of_breaking_it(city: City) -> None:
    if "recommendations" not in {s["name"] for s in city.status()["services"]}:
        pytest.skip("recommendations does not run in this city")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{city.base_url}/api/v1/products?page=3&page_size=10") as answer:
            products = [p["id"] for p in (await answer.json())["items"]]
        status, healthy, _ = await product_page(http, city, products[0])
        assert status == 200 and "recommendations" not in healthy["degraded"]

        city.agora("chaos", "delay", "recommendations", "5000", "--for", "60")
        try:
            await asyncio.sleep(0.6)  # the chassis re-reads fault settings twice a second
            timings = []
            for product_id in products[1:]:
                status, page, elapsed = await product_page(http, city, product_id)
                assert status == 200
                assert "recommendations" in page["degraded"]
                assert page["recommendations"] is not None  # the fallback: same-category products
                assert all(r["id"] != product_id for r in page["recommendations"])
                timings.append(elapsed)
        finally:
            city.agora("chaos", "clear", "recommendations")
    # Well under the 5 s delay: the call's deadline (150 ms) cut it short, or the breaker opened.
    assert max(timings) < 2.0, timings


async def test_with_recommendations_killed_the_page_still_answers_and_says_so(city: City) -> None:
    if "recommendations" not in {s["name"] for s in city.status()["services"]}:
        pytest.skip("recommendations does not run in this city")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{city.base_url}/api/v1/products?page=5&page_size=10") as answer:
            products = [p["id"] for p in (await answer.json())["items"]]
        killed = city.agora("chaos", "kill", "recommendations")
        assert killed.returncode == 0, killed.stderr
        status, page, _ = await product_page(http, city, products[0])  # before the supervisor restarts it
        assert status == 200 and "recommendations" in page["degraded"]
        for _ in range(150):  # the supervisor brings it back
            if all(s["healthy"] for s in city.status()["services"] if s["name"] == "recommendations"):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(6)  # the breaker's open period, then a probe closes it
        status, page, _ = await product_page(http, city, products[1])
        assert status == 200 and "recommendations" not in page["degraded"], page["degraded"]
