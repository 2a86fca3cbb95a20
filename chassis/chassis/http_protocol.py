"""The edge's HTTP/1.1 connections: uvicorn's httptools protocol, with the limits it leaves to a
fronting proxy that a laptop city does not have.

Without them, a client that opens connections and sends nothing, or headers a byte at a time,
holds each one for good, and a few thousand take every file descriptor of the gateway; and a
client that streams one endless header grows the gateway's memory by as much. So a request's
line and headers must arrive within `HEADER_SECONDS` and hold at most `MAX_HEADER_BYTES`, or the
connection is answered 408 or 431 and closed. What the parser cannot read at all is answered
400, as uvicorn does, but as a problem document, and logged only at DEBUG: a flood of garbage
would otherwise write a log line per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_SECONDS = 10.0
MAX_HEADER_BYTES = 64 * 1024
_UNREADABLE = "Invalid HTTP request received."
_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class EdgeProtocol(HttpToolsProtocol):
    _header_deadline: asyncio.TimerHandle | None = None
    _header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting_for_headers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_deadline is not None and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(431, f"a request's line and headers may hold at most {MAX_HEADER_BYTES} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:  # the next request on a kept-alive connection
            self._await_headers()

    def on_headers_complete(self) -> None:
        self._stop_waiting_for_headers()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "the request is not valid HTTP/1.1" if msg == _UNREADABLE else msg)

    def _await_headers(self) -> None:
        self._header_bytes = 0
        self._header_deadline = self.loop.call_later(
            HEADER_SECONDS, self._refuse, 408, f"a request's line and headers must arrive within {HEADER_SECONDS:g} s"
        )

    def _stop_waiting_for_headers(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _refuse(self, status: int, detail: str) -> None:
        """Answers before any app has seen the request, so the answer carries its own request id."""
        self._stop_waiting_for_headers()
        if self.transport.is_closing():
            return
        reason = _REASONS[status]
        body = json.dumps({
            "type": f"https://agora.dev/problems/{reason.decode().lower().replace(' ', '-')}",
            "title": reason.decode(), "status": status, "detail": detail,
        }).encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\ncontent-length: %d\r\n"
            b"x-request-id: %s\r\nconnection: close\r\n\r\n%s"
            % (status, reason, len(body), os.urandom(16).hex().encode(), body)
        )
        self.transport.close()


class QuietUnreadableRequests(logging.Filter):
    """uvicorn logs a warning for each request its parser cannot read: demoted to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() != _UNREADABLE:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
