"""Graceful degradation: the product page stays up and fast when recommendations are slow or gone,
and the order pages when cart is."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

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


async def shopper_with_a_line_in_the_cart(http: aiohttp.ClientSession, city: City) -> Client:
    admin = await admin_client(http, city, ADMIN_EMAIL, ADMIN_PASSWORD)
    shopper = await Client(http, city.base_url).sign_up()
    product = await new_product(admin, stock=5)
    assert (await shopper.request("PUT", f"/api/v1/cart/items/{product}", json={"quantity": 1})).status == 200
    return shopper


async def placed_once_cart_is_back(shopper: Client) -> None:
    """The cart is placed within 15 s of cart's fault being lifted: orders' circuit to cart
    half-opens after its open period, then closes."""
    key = uuid.uuid4().hex
    for _ in range(150):
        placed = await shopper.place(key)
        if placed.status == 202:
            break
        await asyncio.sleep(0.1)
    assert placed.status == 202, placed.body


async def test_with_cart_failing_placing_an_order_names_cart_and_the_order_pages_stay_up(city: City) -> None:
    """Orders answers for cart, which failed: the edge names cart, and orders' own circuit stays
    closed, so a shopper can still list and read orders while no one can place one."""
    async with aiohttp.ClientSession() as http:
        shopper = await shopper_with_a_line_in_the_cart(http, city)
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
        await placed_once_cart_is_back(shopper)


async def test_with_cart_slow_placing_an_order_names_cart_not_orders(city: City) -> None:
    """Orders retries cart only while a whole attempt fits in what the gateway gave it: a last
    attempt cut short would time out together with orders, and the edge would blame orders (504)
    and count it against orders' circuit for what cart did."""
    async with aiohttp.ClientSession() as http:
        shopper = await shopper_with_a_line_in_the_cart(http, city)
        city.agora("chaos", "delay", "cart", "1500", "--for", "60")
        try:
            await asyncio.sleep(0.6)  # the chassis re-reads fault settings twice a second
            for _ in range(3):
                refused = await shopper.place()
                assert refused.status == 503, refused.body
                assert refused.body["detail"] == "cart is unavailable; try again shortly"
        finally:
            city.agora("chaos", "clear", "cart")
        await placed_once_cart_is_back(shopper)


async def order_details_once(shopper: Client, order_id: str, ready: Callable[[dict[str, Any]], bool],
                             timeout: float = 20.0) -> dict[str, Any]:
    """The order's details once `ready` holds for them (or the last ones after `timeout`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        answer = await shopper.request("GET", f"/api/v1/orders/{order_id}")
        if (answer.status == 200 and ready(answer.body)) or asyncio.get_running_loop().time() > deadline:
            assert answer.status == 200, answer.body
            return answer.body
        await asyncio.sleep(0.2)


async def test_with_payments_then_shipping_failing_the_order_details_answer_without_that_part_and_name_it(
    city: City,
) -> None:
    """Payment and shipment are optional parts of an order's details: while their service fails,
    the order still answers, with that part null and named in `degraded`; once the fault is
    lifted (and the gateway's circuit has closed again), the part is back."""
    async with aiohttp.ClientSession() as http:
        shopper = await shopper_with_a_line_in_the_cart(http, city)
        placed = await shopper.place()
        assert placed.status == 202, placed.body
        order_id = placed.body["order_id"]
        healthy = await shopper.until_settled(order_id, wanted=frozenset({"SHIPPED", "CANCELLED"}))
        assert healthy["status"] == "SHIPPED", healthy
        healthy = await order_details_once(shopper, order_id, lambda o: True)
        assert healthy["payment"] is not None and healthy["shipment"] is not None
        assert healthy["degraded"] == []
        order = {key: value for key, value in healthy.items() if key not in ("payment", "shipment", "degraded")}

        for service, part, other in (("payments", "payment", "shipment"), ("shipping", "shipment", "payment")):
            city.agora("chaos", "fail", service, "1", "--for", "60")
            try:
                await asyncio.sleep(0.6)  # the chassis re-reads fault settings twice a second
                for _ in range(6):  # failed calls first, then the gateway's open circuit refusing them
                    answer = await shopper.request("GET", f"/api/v1/orders/{order_id}")
                    assert answer.status == 200, answer.body
                    assert answer.body[part] is None, (service, answer.body)
                    assert answer.body["degraded"] == [part], (service, answer.body)
                    assert answer.body[other] == healthy[other], (service, answer.body)
                    assert {key: answer.body[key] for key in order} == order
            finally:
                city.agora("chaos", "clear", service)
                # The gateway's circuit to the service half-opens after its open period (5 s).
                back = await order_details_once(shopper, order_id, lambda o, part=part: part not in o["degraded"])
            assert back["degraded"] == [] and back[part] == healthy[part], (service, back)


async def test_with_inventory_failing_the_product_page_answers_without_availability_and_says_so(city: City) -> None:
    """Availability is an optional part of the product page: while inventory fails, the page
    answers with `availability` null and `"availability"` in `degraded`, and gets it back after."""
    async with aiohttp.ClientSession() as http:
        admin = await admin_client(http, city, ADMIN_EMAIL, ADMIN_PASSWORD)
        product = await new_product(admin, stock=3)
        status, healthy, _ = await product_page(http, city, product)
        assert status == 200, healthy
        assert healthy["availability"] == {"in_stock": True, "quantity": 3}
        assert "availability" not in healthy["degraded"]

        city.agora("chaos", "fail", "inventory", "1", "--for", "60")
        try:
            # The fault settings are re-read within 0.5 s, and the healthy page leaves the gateway's
            # catalog cache after 1 s (a degraded page is not cached).
            await asyncio.sleep(1.2)
            for _ in range(6):  # failed calls first, then the gateway's open circuit refusing them
                status, page, _ = await product_page(http, city, product)
                assert status == 200, page
                assert page["availability"] is None, page
                assert "availability" in page["degraded"], page
                assert (page["id"], page["name"], page["price"]) == (product, healthy["name"], healthy["price"])
        finally:
            city.agora("chaos", "clear", "inventory")
            for _ in range(100):  # the gateway's circuit to inventory closes after its open period (5 s)
                status, page, _ = await product_page(http, city, product)
                if status == 200 and "availability" not in page["degraded"]:
                    break
                await asyncio.sleep(0.2)
        assert status == 200 and page["availability"] == {"in_stock": True, "quantity": 3}, page
