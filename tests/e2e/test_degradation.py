"""Graceful degradation: the product page stays up and fast when recommendations are slow or gone,
and the order pages when cart is."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, City
from tests.e2e.shop import Client, admin_client, new_product

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


async def test_with_cart_failing_placing_an_order_names_cart_and_the_order_pages_stay_up(city: City) -> None:
    """Orders answers for cart, which failed: the edge names cart, and orders' own circuit stays
    closed, so a shopper can still list and read orders while no one can place one."""
    async with aiohttp.ClientSession() as http:
        admin = await admin_client(http, city, ADMIN_EMAIL, ADMIN_PASSWORD)
        shopper = await Client(http, city.base_url).sign_up()
        product = await new_product(admin, stock=5)
        assert (await shopper.request("PUT", f"/api/v1/cart/items/{product}", json={"quantity": 1})).status == 200
        city.agora("chaos", "fail", "cart", "1", "--for", "60")
        try:
            await asyncio.sleep(0.6)  # the chassis re-reads fault settings twice a second
            for _ in range(25):  # more than enough failures to open a circuit (10 of the last 20)
                refused = await shopper.place()
                assert refused.status == 503, refused.body
                assert refused.body["detail"] == "cart is unavailable; try again shortly"
                assert refused.headers["Retry-After"]
            assert (await shopper.request("GET", "/api/v1/orders")).status == 200
        finally:
            city.agora("chaos", "clear", "cart")
        key = uuid.uuid4().hex
        for _ in range(150):  # orders' circuit to cart half-opens after its open period, then closes
            placed = await shopper.place(key)
            if placed.status == 202:
                break
            await asyncio.sleep(0.1)
        assert placed.status == 202, placed.body
