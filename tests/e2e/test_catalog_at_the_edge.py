"""The catalog part of API.md, through the gateway of a real city."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, City
from tests.e2e.shop import admin_client, new_product

pytestmark = pytest.mark.e2e


async def get(city: City, path: str, **kwargs) -> tuple[int, Any, Any]:  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as http, http.get(city.base_url + path, **kwargs) as response:
        body = await response.json(content_type=None)
        return response.status, response.headers.copy(), body


async def test_products_page_through_a_seeded_catalog(city: City) -> None:
    status, headers, first = await get(city, "/api/v1/products?page=1&page_size=20")
    assert status == 200
    assert first["total"] >= 200 and len(first["items"]) == 20 and first["page_size"] == 20
    product = first["items"][0]
    assert set(product) >= {"id", "sku", "name", "price", "categories", "image_url"}
    assert isinstance(product["price"]["amount"], int) and product["price"]["currency"] == "USD"
    _, _, second = await get(city, "/api/v1/products?page=2&page_size=20")
    assert {p["id"] for p in first["items"]}.isdisjoint({p["id"] for p in second["items"]})
    assert headers["X-Request-Id"] and headers["traceparent"].startswith("00-")
    assert int(headers["RateLimit-Remaining"]) >= 0


@pytest.mark.parametrize("path", ["/.well-known/jwks.json", "/api/openapi.json", "/nothing-here", "/api/v1/nope", "/healthz"])
async def test_every_answer_carries_the_rate_limit(city: City, path: str) -> None:
    _, headers, _ = await get(city, path)
    assert int(headers["RateLimit-Limit"]) > 0 and int(headers["RateLimit-Remaining"]) >= 0
    assert int(headers["RateLimit-Reset"]) >= 0


async def test_search_and_category_filters(city: City) -> None:
    _, _, categories = await get(city, "/api/v1/categories")
    assert len(categories["items"]) >= 8
    slug = categories["items"][0]["slug"]
    _, _, in_category = await get(city, f"/api/v1/products?category={slug}&page_size=100")
    assert in_category["total"] > 0 and all(slug in p["categories"] for p in in_category["items"])
    _, _, found = await get(city, "/api/v1/products?q=headphones")
    assert found["total"] > 0 and all("Headphones" in p["name"] for p in found["items"])
    _, _, nothing = await get(city, "/api/v1/products?q=zzzqqqxxx")
    assert nothing == {"items": [], "page": 1, "page_size": 20, "total": 0}


async def test_a_product_page_aggregates_and_names_what_it_could_not_fetch(city: City) -> None:
    _, _, listing = await get(city, "/api/v1/products?page_size=1")
    status, _, page = await get(city, f"/api/v1/products/{listing['items'][0]['id']}")
    assert status == 200
    assert page["description"] and "degraded" in page
    for part in ("availability", "recommendations"):
        assert (page[part] is None) == (part in page["degraded"]) or part == "recommendations"
    assert page["recommendations"] is None or len(page["recommendations"]) <= 4


async def test_a_new_product_nobody_bought_is_recommended_its_own_category(city: City) -> None:
    """Catalog announces the product (ProductCreated); recommendations learns its category."""
    async with aiohttp.ClientSession() as http:
        product_id = await new_product(await admin_client(http, city, ADMIN_EMAIL, ADMIN_PASSWORD), stock=1)
    for _ in range(100):
        status, _, page = await get(city, f"/api/v1/products/{product_id}")
        if page["recommendations"] and "recommendations" not in page["degraded"]:
            break
        await asyncio.sleep(0.1)
    assert status == 200 and "recommendations" not in page["degraded"], page
    assert len(page["recommendations"]) == 4
    assert all("kitchen" in suggested["categories"] for suggested in page["recommendations"])


async def test_an_admin_reads_back_at_once_what_it_wrote(city: City) -> None:
    """The gateway keeps catalog answers for a second; an admin's write through it clears them."""
    async with aiohttp.ClientSession() as http:
        admin = await admin_client(http, city, ADMIN_EMAIL, ADMIN_PASSWORD)
        for _ in range(2):  # the second read comes from the cache, which now holds the listing
            _, _, before = await get(city, "/api/v1/products?category=kitchen&page_size=100")
        product_id = await new_product(admin, stock=5)
        _, _, after = await get(city, "/api/v1/products?category=kitchen&page_size=100")
        assert after["total"] == before["total"] + 1
        _, _, page = await get(city, f"/api/v1/products/{product_id}")  # now cached too
        assert page["availability"] == {"in_stock": True, "quantity": 5}
        emptied = await admin.request("PUT", f"/api/v1/admin/inventory/{product_id}", json={"quantity": 0})
        assert emptied.status == 200
        _, _, page = await get(city, f"/api/v1/products/{product_id}")
        assert page["availability"] == {"in_stock": False, "quantity": 0}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/products/00000000-0000-0000-0000-000000000000", 404),
        ("/api/v1/products/not-an-id", 404),
        ("/api/v1/products?page_size=0", 422),
        ("/api/v1/products?page_size=101", 422),
        ("/api/v1/products?page=0", 422),
        ("/api/v1/nothing-here", 404),
    ],
)
async def test_client_errors_are_problem_documents(city: City, path: str, status: int) -> None:
    async with aiohttp.ClientSession() as http, http.get(city.base_url + path) as response:
        assert response.status == status
        assert response.headers["Content-Type"] == "application/problem+json"
        problem = await response.json(content_type=None)
        assert problem["status"] == status and problem["title"]


async def test_other_spellings_of_a_product_id_are_unknown_and_cannot_open_the_catalog_circuit(city: City) -> None:
    """Braces or a `urn:uuid:` prefix used to fail in the database driver: 503, counted by the
    gateway's breaker for catalog, so a few anonymous requests shut the catalog for everyone."""
    _, _, listing = await get(city, "/api/v1/products?page_size=1")
    product_id = listing["items"][0]["id"]
    spellings = [product_id.upper(), f"{{{product_id}}}", f"urn:uuid:{product_id}", product_id.replace("-", "")]
    async with aiohttp.ClientSession() as http:
        for _ in range(10):
            for spelling in spellings:
                async with http.get(f"{city.base_url}/api/v1/products/{quote(spelling)}") as response:
                    assert response.status == 404, (spelling, response.status)
    assert (await get(city, f"/api/v1/products/{product_id}"))[0] == 200
    assert (await get(city, "/api/v1/products?q=lamp"))[0] == 200


async def test_search_folds_the_case_of_accented_letters(city: City) -> None:
    """The embedded Postgres folds case by Unicode: under libc's C locale, "CAFÉ" missed "Café"."""
    word = f"Crème{uuid.uuid4().hex[:8]}"
    async with aiohttp.ClientSession() as http:
        admin = await admin_client(http, city, ADMIN_EMAIL, ADMIN_PASSWORD)
        created = await admin.request("POST", "/api/v1/admin/products", json={
            "sku": f"TEST-{uuid.uuid4().hex[:10]}", "name": f"Café {word} Éclair Mold", "description": "For tests",
            "price": {"amount": 900, "currency": "USD"}, "categories": ["kitchen"],
        })
        assert created.status == 201, created.body
    for query in (word.upper(), word.lower(), f"café {word}".upper()):
        _, _, found = await get(city, f"/api/v1/products?q={quote(query)}")
        assert [item["id"] for item in found["items"]] == [created.body["id"]], query


async def test_health_metrics_and_the_openapi_document(city: City) -> None:
    assert (await get(city, "/healthz"))[2] == {"status": "ok"}
    assert (await get(city, "/readyz"))[0] == 200
    _, _, document = await get(city, "/api/openapi.json")
    assert document["openapi"].startswith("3.1")
    assert "/api/v1/products" in document["paths"]
    async with aiohttp.ClientSession() as http, http.get(city.base_url + "/metrics") as response:
        text = await response.text()
    assert 'agora_http_requests_total{method="GET",route="/api/v1/products"' in text.replace("service=\"gateway\",", "")


def test_status_names_every_service_with_its_own_pid(city: City) -> None:
    status = city.status()
    for service in status["services"]:
        assert service["healthy"] is True and service["pid"] > 0
        assert service["http"]
    assert {entry["name"] for entry in status["infra"]} >= {"postgres", "nats", "redis"}
