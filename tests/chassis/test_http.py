"""The edge app's behaviour, driven through real HTTP on a real port (uvicorn)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
import structlog.testing
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, Field

import chassis.http
from chassis.health import Readiness
from chassis.http import Problem, UvicornServer, create_app
from tests.support import free_port, serving_http


class Widget(BaseModel):
    quantity: int = Field(ge=0, le=99)


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    readiness = Readiness()
    readiness.accepting = True
    app = create_app(service="test", readiness=readiness, title="test", version="1")

    @app.put("/widgets/{widget_id}")
    async def put_widget(widget_id: str, widget: Widget) -> dict[str, int]:
        if widget_id == "missing":
            raise Problem(404, "no such widget")
        return {"quantity": widget.quantity}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    @app.get("/unavailable")
    async def unavailable() -> None:
        raise Problem(503, "a dependency is down")

    async with serving_http(app, free_port()) as url:
        yield url


async def test_every_response_carries_a_request_id_and_traceparent(base_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base_url}/healthz") as response:
            assert response.status == 200
            assert len(response.headers["X-Request-Id"]) >= 16
            assert response.headers["traceparent"].startswith("00-")
        async with http.get(f"{base_url}/healthz", headers={"X-Request-Id": "client-chosen-42"}) as response:
            assert response.headers["X-Request-Id"] == "client-chosen-42"
        async with http.get(f"{base_url}/healthz", headers={"X-Request-Id": "bad id\u00e9"}) as response:
            assert response.headers["X-Request-Id"] != "bad id\u00e9"


async def test_a_client_trace_is_continued(base_url: str) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/healthz", headers={"traceparent": parent}) as response:
        assert response.headers["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/nowhere", None, 404),
        ("DELETE", "/healthz", None, 405),
        ("PUT", "/widgets/w1", {"quantity": 100}, 422),
        ("PUT", "/widgets/w1", {"quantity": "many"}, 422),
        ("PUT", "/widgets/missing", {"quantity": 1}, 404),
        ("GET", "/boom", None, 500),
    ],
)
async def test_every_error_is_a_problem_document(base_url: str, method: str, path: str, body: object, status: int) -> None:
    async with aiohttp.ClientSession() as http, http.request(method, f"{base_url}{path}", json=body) as response:
        assert response.status == status
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.headers["X-Request-Id"] and response.headers["traceparent"].startswith("00-")
        problem = await response.json(content_type=None)
        assert problem["status"] == status and problem["title"] and problem["detail"]
        assert "secret internals" not in await response.text()
        if status == 422:
            assert problem["errors"][0]["field"] == "quantity"


@pytest.mark.parametrize(("body", "where"), [(b"{not json", ": Expecting property name enclosed in double quotes at character 1"),
                                            (b'{"quantity": ', ": Expecting value at character 13"),
                                            (b"\xff\xfe{", "")])
async def test_a_body_that_is_not_json_is_a_400_saying_where_it_breaks(base_url: str, body: bytes, where: str) -> None:
    async with aiohttp.ClientSession() as http, http.put(
        f"{base_url}/widgets/w1", data=body, headers={"Content-Type": "application/json"}
    ) as response:
        problem = await response.json(content_type=None)
        assert response.status == 400 and response.headers["Content-Type"] == "application/problem+json"
        assert problem["detail"] == f"the body is not valid JSON{where}"
        assert "errors" not in problem


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_over_one_mebibyte_is_refused_with_413(base_url: str, chunked: bool) -> None:
    payload = b'{"quantity": 1, "pad": "' + b"x" * (1024 * 1024) + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 65536):
            yield payload[start : start + 65536]

    async with aiohttp.ClientSession() as http, http.put(
        f"{base_url}/widgets/w1", data=chunks() if chunked else payload, headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 413
        assert response.headers["Content-Type"] == "application/problem+json"


async def test_the_line_logged_for_a_failed_request_names_its_trace_and_span(base_url: str) -> None:
    with structlog.testing.capture_logs() as logged:
        async with aiohttp.ClientSession() as http, http.get(f"{base_url}/nowhere") as response:
            _, trace_id, span_id, _ = response.headers["traceparent"].split("-")

    line = next(entry for entry in logged if entry["event"] == "http_request")
    assert (line["status"], line["trace_id"], line["span_id"]) == (404, trace_id, span_id)


async def test_the_api_docs_load_everything_from_the_service_itself(base_url: str) -> None:
    """Swagger UI comes from the installed package, not a CDN: the docs work on a laptop offline."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base_url}/api/docs") as page:
            assert page.status == 200 and page.content_type == "text/html"
            html = await page.text()
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert "/api/openapi.json" in html and len(assets) >= 3
        for asset in assets:
            assert asset.startswith("/api/docs/assets/"), asset
            async with http.get(base_url + asset) as answer:
                assert answer.status == 200 and len(await answer.read()) > 100, asset


@pytest.mark.parametrize(("trusted_proxies", "seen"), [("", "127.0.0.1"), ("127.0.0.1", "203.0.113.9")])
async def test_a_forwarded_client_address_is_believed_only_from_a_trusted_proxy(trusted_proxies: str, seen: str) -> None:
    """The rate limits are keyed on the client's address: a client that could name its own with
    X-Forwarded-For would get a fresh limit per request."""

    async def client_address(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["client"][0].encode()})

    port = free_port()
    server = UvicornServer(client_address, "127.0.0.1", port, trusted_proxies=trusted_proxies)
    task = asyncio.create_task(server.serve())
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/", headers={"X-Forwarded-For": "203.0.113.9"}) as answer:
                        assert await answer.text() == seen
                        break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.02)
            else:
                raise AssertionError("the server never answered")
    finally:
        await server.shutdown()
        await task


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """The edge's spans, recorded and kept in memory (the process' own provider records none)."""
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(chassis.http, "_tracer", provider.get_tracer("test"))
    return exporter


async def test_a_request_span_is_named_by_its_route_and_carries_its_status(
    base_url: str, exported: InMemorySpanExporter
) -> None:
    """A trace backend indexes span names: a path's ids, or paths and methods a client makes up,
    would add a name per request. A server error marks the span failed; a client's 4xx does not."""
    async with aiohttp.ClientSession() as http:
        for path in ("/widgets/1", "/widgets/2", "/widgets/missing", "/no/such/path"):
            async with http.put(f"{base_url}{path}", json={"quantity": 1}):
                pass
        async with http.request("PROPFIND", f"{base_url}/widgets/3"):
            pass
        for path in ("/unavailable", "/boom"):
            async with http.get(f"{base_url}{path}"):
                pass

    spans = [(span.name, span.attributes.get("http.response.status_code"), span.status.status_code.name)
             for span in exported.get_finished_spans()]
    assert spans == [
        ("PUT /widgets/{widget_id}", 200, "UNSET"), ("PUT /widgets/{widget_id}", 200, "UNSET"),
        ("PUT /widgets/{widget_id}", 404, "UNSET"), ("PUT unmatched", 404, "UNSET"),
        ("_OTHER /widgets/{widget_id}", 405, "UNSET"), ("GET /unavailable", 503, "ERROR"), ("GET /boom", 500, "ERROR"),
    ]
    assert exported.get_finished_spans()[0].attributes["http.route"] == "/widgets/{widget_id}"
    assert "RuntimeError" in exported.get_finished_spans()[-1].status.description


async def test_a_body_dripped_slower_than_its_deadline_is_answered_408(
    base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else a client could hold a request, and its connection, for as long as it drips."""
    monkeypatch.setattr(chassis.http, "BODY_SECONDS", 0.5)
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"PUT /widgets/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{")
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408") and b"application/problem+json" in answer
    assert b"the body must arrive within 0.5 s" in answer


async def test_head_answers_what_get_would_without_the_body(base_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base_url}/healthz") as got:
            body = await got.read()
        async with http.head(f"{base_url}/healthz") as headed:
            assert headed.status == 200 and await headed.read() == b""
            assert headed.headers["Content-Length"] == str(len(body)) and headed.headers["X-Request-Id"]


async def test_a_coded_body_is_refused_415_rather_than_misread(base_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for coding in ("gzip", "br"):
            async with http.put(f"{base_url}/widgets/1", data=b'{"quantity": 1}', headers={
                "Content-Type": "application/json", "Content-Encoding": coding,
            }) as answer:
                assert answer.status == 415 and answer.content_type == "application/problem+json"
        async with http.put(f"{base_url}/widgets/1", json={"quantity": 1}, headers={"Content-Encoding": "identity"}) as plain:
            assert plain.status == 200


async def test_a_trailing_slash_is_an_unknown_path_not_a_redirect_built_from_the_host_header(base_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(
        f"{base_url}/healthz/", headers={"Host": "evil.example"}, allow_redirects=False
    ) as answer:
        assert answer.status == 404 and answer.content_type == "application/problem+json"
        assert "Location" not in answer.headers
