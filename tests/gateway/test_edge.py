"""The gateway's edge over real HTTP, with catalog a real gRPC server behind it: what each request
carries to the next hop, what a refused one answers, how the catalog's parameters are judged."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import structlog
from agora.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from pydantic import ValidationError

from chassis import metrics, tracing
from chassis.chaos import ChaosSwitch
from chassis.grpc import GrpcServer, open_channel
from chassis.health import Readiness
from chassis.resilience import Guard, load_policies
from chassis.settings import ServiceSettings
from gateway.app import create_api
from gateway.models import WHITESPACE
from gateway.ratelimit import RateLimiter
from gateway.routes.admin import Price, StockLevel
from gateway.routes.cart import Quantity
from gateway.routes.identity import Registration
from gateway.settings import GatewaySettings
from gateway.upstreams import Upstreams
from tests.support import Tokens, free_port, serving_http

PER_MINUTE = 5
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"


class Catalog(catalog_pb2_grpc.CatalogServiceServicer):
    """Answers one product and keeps what each call carried."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, str]]] = []

    async def ListProducts(self, request, context):  # type: ignore[no-untyped-def]
        self.calls.append((request, dict(context.invocation_metadata())))
        return catalog_pb2.ListProductsResponse(items=[product()], total=1)


def product() -> catalog_pb2.Product:
    return catalog_pb2.Product(id="p1", sku="SKU1", name="Lamp", description="A lamp",
                               price={"amount": 1250, "currency": "USD"}, categories=["lamps"])


@dataclass
class Edge:
    url: str
    catalog: Catalog


@pytest.fixture
async def edge() -> AsyncIterator[Edge]:
    tracing.configure("gateway")  # spans as in a service (a no-op if this process already has a provider)
    catalog = Catalog()
    catalog_settings = ServiceSettings(service="catalog", http_port=free_port(), grpc_port=free_port(), mtls="off",
                                       allowed_callers=frozenset({"gateway"}))
    server = GrpcServer(catalog_settings, verifier=lambda: None, chaos=ChaosSwitch(None, "catalog"))
    server.add(catalog_pb2_grpc.add_CatalogServiceServicer_to_server, catalog)
    await server.start()
    settings = GatewaySettings(service="gateway", http_port=free_port(), mtls="off", catalog_cache_seconds=0,
                               rate_limit_per_minute=PER_MINUTE)
    channel = open_channel(settings, "catalog", Guard("catalog", load_policies().for_dependency("catalog")),
                           addresses=[f"127.0.0.1:{catalog_settings.grpc_port}"])
    upstreams = Upstreams(None, catalog_pb2_grpc.CatalogServiceStub(channel), None, None, None, None, None, None, None)
    api = create_api(settings, Readiness(), upstreams, Tokens().verifier(), RateLimiter(None, "unused:"))  # type: ignore[arg-type]
    async with serving_http(api, settings.http_port) as url:
        yield Edge(url, catalog)
    await channel.close()
    await server.stop(0)


async def get(url: str, **headers: str) -> tuple[int, Any, dict[str, list[str]]]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as answer:
        seen: dict[str, list[str]] = {}
        for name, value in answer.headers.items():
            seen.setdefault(name.lower(), []).append(value)
        return answer.status, await answer.json(content_type=None), seen


async def test_the_request_id_and_the_clients_trace_reach_the_next_hop(edge: Edge) -> None:
    status, _, headers = await get(f"{edge.url}/api/v1/products", **{
        "X-Request-Id": "client-chosen-1", "traceparent": f"00-{CLIENT_TRACE}-b7ad6b7169203331-01",
    })

    assert status == 200
    [(_, carried)] = edge.catalog.calls
    assert headers["x-request-id"] == ["client-chosen-1"] == [carried["x-request-id"]]
    assert headers["traceparent"][0].split("-")[1] == CLIENT_TRACE == carried["traceparent"].split("-")[1]


async def test_a_new_request_id_and_trace_are_made_and_carried_when_the_client_sends_none(edge: Edge) -> None:
    _, _, headers = await get(f"{edge.url}/api/v1/products")

    [(_, carried)] = edge.catalog.calls
    assert carried["x-request-id"] == headers["x-request-id"][0]
    version, trace_id, _, flags = headers["traceparent"][0].split("-")
    assert (version, flags) == ("00", "03") and int(trace_id, 16) != 0
    assert carried["traceparent"].split("-")[1] == trace_id


async def test_a_request_over_the_rate_limit_is_answered_like_any_other(edge: Edge) -> None:
    refused_before = metrics.http_requests.labels("gateway", "GET", "/api/v1/products", "429")._value.get()
    for _ in range(PER_MINUTE):
        assert (await get(f"{edge.url}/api/v1/products"))[0] == 200
    status, problem, headers = await get(f"{edge.url}/api/v1/products", **{"X-Request-Id": "one-too-many"})

    assert status == 429 and problem["status"] == 429
    assert headers["content-type"] == ["application/problem+json"]
    assert headers["x-request-id"] == ["one-too-many"] and headers["traceparent"][0].startswith("00-")
    assert headers["ratelimit-limit"] == [str(PER_MINUTE)] and headers["ratelimit-remaining"] == ["0"]
    assert int(headers["retry-after"][0]) >= 1 and headers["ratelimit-reset"] == headers["retry-after"]
    assert len(edge.catalog.calls) == PER_MINUTE
    # Refused before routing, and still counted under the route it asked for.
    assert metrics.http_requests.labels("gateway", "GET", "/api/v1/products", "429")._value.get() == refused_before + 1


async def test_refusals_over_the_rate_limit_are_counted_but_not_logged_line_by_line(edge: Edge) -> None:
    """A flood the limit refuses would otherwise write a log line per refusal (about 1.8 MB a
    second from one client), and rotating the log would then throw away every other line."""
    refused_before = metrics.http_requests.labels("gateway", "GET", "/api/v1/products", "429")._value.get()
    with structlog.testing.capture_logs() as logged:
        for _ in range(PER_MINUTE + 20):
            await get(f"{edge.url}/api/v1/products")
        assert (await get(f"{edge.url}/api/v1/nowhere"))[0] == 429  # refused before it could be a 404

    refused = metrics.http_requests.labels("gateway", "GET", "/api/v1/products", "429")._value.get() - refused_before
    assert refused == 20
    refusals = [entry for entry in logged if entry["event"] == "http_request" and entry["status"] == 429]
    assert {entry["log_level"] for entry in refusals} <= {"debug"}  # below the INFO a city logs at


async def test_every_answer_carries_the_rate_limit_once(edge: Edge) -> None:
    for path, expected in [
        ("/api/v1/products", 200), ("/api/v1/nowhere", 404), ("/api/v1/products?page=0", 422), ("/healthz", 200)
    ]:
        status, _, headers = await get(edge.url + path)
        assert status == expected
        assert [len(headers[name]) for name in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")] == [1, 1, 1]


async def test_the_probes_are_never_charged_nor_refused(edge: Edge) -> None:
    """Supervisors and scrapers poll them: a client over its limit must not make them fail."""
    _, _, first = await get(f"{edge.url}/api/v1/products")
    for path in ("/healthz", "/readyz", "/healthz"):
        _, _, probe = await get(edge.url + path)
        assert probe["ratelimit-remaining"] == first["ratelimit-remaining"]
    for _ in range(PER_MINUTE):
        await get(f"{edge.url}/api/v1/products")
    status, _, probe = await get(f"{edge.url}/healthz")
    assert status == 200 and probe["ratelimit-remaining"] == ["0"]


async def test_requests_are_counted_per_route_template(edge: Edge) -> None:
    def served(route: str, status: str) -> float:
        return metrics.http_requests.labels("gateway", "GET", route, status)._value.get()

    before = served("/api/v1/products/{product_id}", "404"), served("/api/v1/products", "200")
    await get(f"{edge.url}/api/v1/products/{'x' * 65}")
    await get(f"{edge.url}/api/v1/products")

    assert (served("/api/v1/products/{product_id}", "404"), served("/api/v1/products", "200")) == (
        before[0] + 1, before[1] + 1)


@pytest.mark.parametrize(("query", "errors"), [
    ("page_size=0", [("page_size", "Input should be greater than or equal to 1")]),
    ("page_size=101", [("page_size", "Input should be less than or equal to 100")]),
    ("page=abc", [("page", "Input should be a valid integer, unable to parse string as an integer")]),
    ("page=", [("page", "Input should be a valid integer, unable to parse string as an integer")]),
    (f"q={'x' * 201}&page_size=0", [("q", "String should have at most 200 characters"),
                                     ("page_size", "Input should be greater than or equal to 1")]),
    (f"category={'c' * 65}", [("category", "String should have at most 64 characters")]),
    # PostgreSQL text holds no NUL: refused here, not failed on in catalog's database.
    ("q=lamp%00", [("q", "String should match pattern '^[^\\x00]*$'")]),
    ("category=%00", [("category", "String should match pattern '^[^\\x00]*$'")]),
])
async def test_the_product_list_refuses_invalid_parameters_field_by_field(
    edge: Edge, query: str, errors: list[tuple[str, str]]
) -> None:
    status, problem, headers = await get(f"{edge.url}/api/v1/products?{query}")

    assert status == 422 and headers["content-type"] == ["application/problem+json"]
    assert problem["title"] == "Unprocessable Content" and problem["detail"] == "the request is not valid"
    assert [(error["field"], error["message"]) for error in problem["errors"]] == errors
    assert edge.catalog.calls == []


async def test_the_product_list_passes_valid_parameters_on_with_their_defaults(edge: Edge) -> None:
    await get(f"{edge.url}/api/v1/products")
    await get(f"{edge.url}/api/v1/products?q=lamp&category=lamps&page=2&page_size=5&page_size=7&unknown=1")

    asked = [(call.q, call.category, call.page, call.page_size) for call, _ in edge.catalog.calls]
    assert asked == [("", "", 1, 20), ("lamp", "lamps", 2, 7)]


async def test_a_product_id_longer_than_any_id_is_unknown_without_asking_catalog(edge: Edge) -> None:
    status, problem, _ = await get(f"{edge.url}/api/v1/products/{'x' * 65}")

    assert status == 404 and problem["detail"] == "no such product"
    assert edge.catalog.calls == []


async def test_the_document_says_which_operations_want_a_bearer_token(edge: Edge) -> None:
    _, document, _ = await get(f"{edge.url}/api/openapi.json")

    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/api/v1/cart"]["get"]["security"] == [{"bearer": []}]
    assert document["paths"]["/api/v1/admin/sales"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in document["paths"]["/api/v1/products"]["get"]
    assert "security" not in document["paths"]["/api/v1/auth/login"]["post"]


async def test_the_document_says_placing_an_order_requires_an_idempotency_key(edge: Edge) -> None:
    """API.md: "Idempotency-Key (1 to 255 printable characters) is required (400 without it)"."""
    _, document, _ = await get(f"{edge.url}/api/openapi.json")

    [key] = [parameter for parameter in document["paths"]["/api/v1/orders"]["post"]["parameters"]
             if parameter["name"] == "Idempotency-Key"]
    assert key["in"] == "header" and key["required"] is True
    assert key["schema"] == {"type": "string", "pattern": "^[\\x20-\\x7e]{1,255}$"}
    assert "400" in document["paths"]["/api/v1/orders"]["post"]["responses"]


async def test_the_starter_catalogs_pictures_are_served(edge: Edge) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{edge.url}/static/products/kit-0001.svg") as picture:
            assert picture.status == 200 and picture.content_type == "image/svg+xml"
            assert "KIT-0001" in await picture.text()
        async with http.get(f"{edge.url}/static/products/..%2Fsecrets.svg") as unknown:
            assert unknown.status == 404 and unknown.content_type == "application/problem+json"


async def test_no_pattern_in_the_document_means_different_things_to_different_regex_engines(edge: Edge) -> None:
    """JSON Schema's patterns are ECMA-262 regexes; pydantic checks them with Rust's, the services
    with Python's. `\\s`, `\\d`, `\\w` and `\\b` are the classes whose members differ (ECMA's `\\s`
    has \\ufeff but not \\x85), so a fuzzer once sent an email the document allowed and got 422."""
    _, document, _ = await get(f"{edge.url}/api/openapi.json")

    patterns = list(_patterns_in(document))
    assert len(patterns) >= 5
    for pattern in patterns:
        assert not re.search(r"\\[sSdDwWbB]", pattern), pattern


def _patterns_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from _patterns_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from _patterns_in(item)


def test_whitespace_in_patterns_is_what_the_services_strip() -> None:
    spelled_out = re.compile(f"[{WHITESPACE}]")
    for code in range(0x110000):
        character = chr(code)
        assert bool(spelled_out.fullmatch(character)) is character.isspace(), hex(code)


@pytest.mark.parametrize("name", ["\u200b", "\ufeff", "\u0301", " \u200b\u200d ", "\u2060\u00ad"])
def test_a_name_of_invisible_characters_is_blank(name: str) -> None:
    with pytest.raises(ValidationError):
        Registration.model_validate({"email": "zoe@example.com", "password": "long enough pw", "name": name})


@pytest.mark.parametrize("name", ["Zoë", "Zoe\u0308", "李", "A\u200bB"])
def test_a_name_with_something_visible_is_not_blank(name: str) -> None:
    assert Registration.model_validate({"email": "zoe@example.com", "password": "long enough pw", "name": name})


@pytest.mark.parametrize("quantity", [True, "3", 2.5, None])
def test_a_quantity_or_an_amount_must_be_a_json_integer(quantity: object) -> None:
    """FastAPI validates the parsed body, where pydantic would read `true` as 1 and `"3"` as 3.
    JSON Schema's integer may be written 3.0, so that one is read as 3."""
    with pytest.raises(ValidationError):
        Quantity.model_validate({"quantity": quantity})
    with pytest.raises(ValidationError):
        StockLevel.model_validate({"quantity": quantity})
    with pytest.raises(ValidationError):
        Price.model_validate({"amount": quantity, "currency": "USD"})
    assert Quantity.model_validate({"quantity": 3}).quantity == Quantity.model_validate({"quantity": 3.0}).quantity == 3
