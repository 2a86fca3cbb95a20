"""The edge's connections, over raw sockets: a request's headers have a deadline and a size cap,
and what the parser cannot read is a problem document, not a log line (chassis.http_protocol)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import pytest

from chassis import http_protocol
from chassis.health import Readiness
from chassis.http import create_app
from tests.support import free_port, serving_http


@pytest.fixture
async def address(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, int]]:
    monkeypatch.setattr(http_protocol, "HEADER_SECONDS", 0.5)
    monkeypatch.setattr(http_protocol, "MAX_HEADER_BYTES", 4096)
    readiness = Readiness()
    readiness.accepting = True
    port = free_port()
    async with serving_http(create_app(service="edge", readiness=readiness, title="t", version="1"), port):
        yield "127.0.0.1", port


async def exchange(address: tuple[str, int], *parts: bytes, pause: float = 0.0) -> tuple[int, dict[str, str], dict]:
    """Sends `parts` (with `pause` between them, until the server answers) and reads until it closes."""
    reader, writer = await asyncio.open_connection(*address)
    answer = b""
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.read(65536), pause)
            if answer:
                break
        answer += await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body) if body else {}


async def test_a_connection_that_sends_nothing_is_answered_408_and_closed(address: tuple[str, int]) -> None:
    status, headers, problem = await exchange(address)

    assert status == 408 and headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close" and headers["x-request-id"]
    assert problem["status"] == 408 and "must arrive within" in problem["detail"]


async def test_headers_dripped_slower_than_the_deadline_are_answered_408(address: tuple[str, int]) -> None:
    drip = [b"GET /healthz HTTP/1.1\r\n", *(b"X-Slow: %d\r\n" % n for n in range(10))]

    status, _, _ = await exchange(address, *drip, pause=0.1)

    assert status == 408


async def test_the_next_request_on_a_kept_alive_connection_has_its_own_deadline(address: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await reader.readuntil(b'{"status":"ok"}')
        writer.write(b"GET /healthz HTTP/1.1\r\n")  # and no more
        second = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 408")


async def test_headers_over_the_cap_are_answered_431_and_closed(address: tuple[str, int]) -> None:
    status, _, problem = await exchange(address, b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 8000)
    fine, _, _ = await exchange(address, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n")

    assert status == 431 and "at most 4096 bytes" in problem["detail"]
    assert fine == 200


async def test_a_request_the_parser_cannot_read_is_a_400_problem_and_no_warning(
    address: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        answers = [await exchange(address, request) for request in (
            b"get /healthz HTTP/1.1\r\n\r\n", b"GET /healthz HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "GET /\u00fc HTTP/1.1\r\n\r\n".encode(),
        )]

    assert [(status, headers["content-type"], problem["status"]) for status, headers, problem in answers] == [
        (400, "application/problem+json", 400)
    ] * 3
    assert not [record for record in caplog.records if record.levelno >= logging.INFO]
