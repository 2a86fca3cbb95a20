"""The edge HTTP app: FastAPI with request ids, traces, metrics, body limits and problem+json.

`create_app(...)` gives an app whose every answer, including errors the framework raises itself
(unknown route, wrong method, validation), is an RFC 9457 problem document, and whose every
response carries `X-Request-Id` and `traceparent`. The middleware is plain ASGI: FastAPI's
`BaseHTTPMiddleware` costs too much per request on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from swagger_ui_bundle import swagger_ui_path

from chassis import metrics
from chassis.health import Readiness, SharedVerdict
from chassis.http_protocol import EdgeProtocol, QuietUnreadableRequests
from chassis.logs import get_logger

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 1024 * 1024
BODY_SECONDS = 30.0
"""How long a request's body may take to arrive, so a client dripping one cannot hold it forever."""
PROBLEM_JSON = "application/problem+json"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")

log = get_logger(__name__)
_tracer = trace.get_tracer("chassis.http")
# Any other method a client sends is counted and traced as `_OTHER`, as OpenTelemetry's HTTP
# conventions say, so inventing methods cannot add series to the metrics.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})

_TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}


class Problem(Exception):
    """Raise anywhere in a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        type_: str | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.type = type_


def problem_response(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    type_: str | None = None,
) -> JSONResponse:
    title = _TITLES.get(status, "Error")
    body: dict[str, Any] = {
        "type": type_ or f"https://agora.dev/problems/{title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_errors(error: RequestValidationError) -> list[dict[str, str]]:
    found = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ()) if part not in ("body", "query", "path", "header")]
        found.append({"field": ".".join(location) or "body", "message": str(item.get("msg", "invalid"))})
    return found


_UNPARSABLE_BODY = "There was an error parsing the body"  # FastAPI's words when decoding the body raised


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, error: Problem) -> Response:
        return problem_response(error.status, error.detail, errors=error.errors, headers=error.headers, type_=error.type)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        detail = error.detail if isinstance(error.detail, str) else _TITLES.get(error.status_code, "Error")
        if error.status_code == 404 and detail == "Not Found":
            detail = f"no resource at {request.url.path}"
        elif error.status_code == 400 and detail == _UNPARSABLE_BODY:  # not UTF-8, nested too deep, ...
            detail = "the body is not valid JSON"
        elif error.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem_response(error.status_code, detail, headers=dict(error.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> Response:
        unreadable = next((item for item in error.errors() if item.get("type") == "json_invalid"), None)
        if unreadable is not None:  # not JSON at all, so no field is at fault: a bad request
            reason, position = unreadable.get("ctx", {}).get("error", "malformed"), unreadable.get("loc", ("?",))[-1]
            return problem_response(400, f"the body is not valid JSON: {reason} at character {position}")
        return problem_response(422, "the request is not valid", errors=_validation_errors(error))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> Response:
        return _unexpected_error(error)


def _unexpected_error(error: Exception) -> Response:
    log.error("unhandled_error", error_type=type(error).__name__, exc_info=error)
    return problem_response(500, "an unexpected error occurred; quote the X-Request-Id when reporting it")


# An admission check run for each request inside its span: the headers its answer carries, and
# the answer itself when the request is refused (a rate limit, say).
Admission = tuple[list[tuple[bytes, bytes]], Response | None]
Guard = Callable[[Scope], Awaitable[Admission]]

# A request without trace headers starts a new trace: its span has no parent.
_NO_CALLER = Context()


class EdgeMiddleware:
    """Request id, server span, the guard, the body limit and metrics, for every HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        routes: list[BaseRoute] | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        guard: Guard | None = None,
    ):
        self.app = app
        self.routes = routes if routes is not None else []
        self.max_body_bytes = max_body_bytes
        self.guard = guard
        self._record = metrics.http_recorder(service)
        self._trace_headers = frozenset(field.encode() for field in propagate.get_global_textmap().fields)
        self._log_every_request = log.is_enabled_for(logging.DEBUG)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = declared = coding = None
        carrier: dict[str, str] = {}
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                given = value
            elif key == b"content-length":
                declared = value
            elif key == b"content-encoding":
                coding = value
            elif key in self._trace_headers:
                carrier[key.decode("latin-1")] = value.decode("latin-1")
        request_id = given.decode() if given is not None and _VALID_REQUEST_ID.fullmatch(given) else os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else "_OTHER"
        status = 500

        # Named by its route once routing has run: a path names ids and whatever a client makes
        # up, and a trace backend indexes span names.
        span = _tracer.start_span(
            method, context=propagate.extract(carrier) if carrier else _NO_CALLER, kind=SpanKind.SERVER
        )
        span_context = span.get_span_context()
        traceparent = f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}"
        extra_headers = [(b"x-request-id", request_id.encode()), (b"traceparent", traceparent.encode())]

        responding = False
        raised = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, responding
            if message["type"] == "http.response.start":
                responding = True
                status = message["status"]
                own = message.get("headers", [])
                # A route's own answer wins: a login refused by its own limit tells that limit,
                # not the edge-wide one that let it through.
                named = {name.lower() for name, _ in own}
                message["headers"] = [*own, *(header for header in extra_headers if header[0] not in named)]
            await send(message)

        # What `trace.use_span` does, without its generator-based context manager.
        activation = otel_context.attach(trace.set_span_in_context(span))
        try:
            if self.guard is not None:
                guard_headers, refusal = await self.guard(scope)
                extra_headers += guard_headers
                if refusal is not None:
                    await refusal(scope, receive, send_with_headers)
                    return
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                await self._too_large()(scope, receive, send_with_headers)
                return
            if coding is not None and coding.strip().lower() not in (b"", b"identity"):
                unsupported = problem_response(415, "bodies are taken as they are: no content coding (gzip, ...)")
                await unsupported(scope, receive, send_with_headers)
                return
            # HEAD is GET without the body, which uvicorn leaves out for it (RFC 9110 §9.3.2).
            routed = {**scope, "method": "GET"} if method == "HEAD" else scope
            await self.app(routed, self._limited(receive), send_with_headers)
        except _BodyRefused as refused:
            otel_context.detach(activation)
            activation = None
            await problem_response(refused.status_code, refused.detail, headers=refused.headers)(
                scope, receive, send_with_headers
            )
        except Exception as error:
            _mark_failed(span, error)
            raised = True
            if responding:
                raise
            # Answered here rather than by the app's outermost handler, which FastAPI places
            # outside this middleware: so this answer too carries the request id and trace.
            await _unexpected_error(error)(scope, receive, send_with_headers)
        finally:
            if activation is not None:
                otel_context.detach(activation)
            template = self._template(scope)
            if span.is_recording():
                _describe(span, method, template, status, marked_failed=raised)
            span.end()
            elapsed = time.perf_counter() - started
            self._record(method, template, status, elapsed)
            # Every request is counted and traced; the log line is kept for failures (and for all
            # requests at AGORA_LOG_LEVEL=DEBUG), since it costs more than the rest of the edge.
            # A refusal over the rate limit is logged like a success: the limit is what stands
            # between a flood and the service, and a line for each refusal would let the flood
            # fill the disk. The line names the request's span itself: the span is no longer current.
            failed = status >= 400 and status != 429
            if failed or self._log_every_request:
                (log.info if failed else log.debug)(
                    "http_request", method=method, route=template, status=status,
                    duration_ms=round(elapsed * 1000, 2), trace_id=f"{span_context.trace_id:032x}",
                    span_id=f"{span_context.span_id:016x}",
                )
            structlog.contextvars.unbind_contextvars("request_id")

    def _template(self, scope: Scope) -> str:
        """The route template a request is counted under. One refused before routing ran (401,
        429, 413) counts under the route it asked for, so a route's refusals show on its own
        series; only a path no route matches is `unmatched`."""
        route = scope.get("route")
        if route is None:
            route = next((candidate for candidate in self.routes if candidate.matches(scope)[0] is not Match.NONE), None)
        return getattr(route, "path", None) or "unmatched"

    def _too_large(self) -> Response:
        return problem_response(413, f"request bodies are limited to {self.max_body_bytes} bytes")

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        whole = False
        deadline = asyncio.get_running_loop().time() + BODY_SECONDS

        async def limited() -> Message:
            nonlocal received, whole
            if whole:  # past the body: a streaming answer waits here for the client to leave
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _BodyRefused(408, f"the body must arrive within {BODY_SECONDS:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyRefused(413, f"request bodies are limited to {self.max_body_bytes} bytes")
                whole = not message.get("more_body", False)
            return message

        return limited


def _describe(span: trace.Span, method: str, template: str, status: int, *, marked_failed: bool) -> None:
    """OpenTelemetry's HTTP server conventions: a low-cardinality name, the route and the
    status, and a server error marks the span failed even when no exception left the app (a
    503 from a dependency that is down, say); a client's 4xx does not."""
    span.update_name(f"{method} {template}")
    span.set_attributes({"http.request.method": method, "http.route": template, "http.response.status_code": status})
    if status >= 500 and not marked_failed:
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"HTTP {status}"))


def _mark_failed(span: trace.Span, error: Exception) -> None:
    """As `trace.use_span` marks the span an exception leaves."""
    span.record_exception(error)
    span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))


class _BodyRefused(HTTPException):
    """Raised while the body streams in; FastAPI lets an HTTPException through its body parsing.
    The connection is closed after the answer: the rest of the body may still be on its way."""

    def __init__(self, status: int, detail: str):
        super().__init__(status, detail, headers={"Connection": "close"})


_DOCS_ASSETS = "/api/docs/assets"


def create_app(
    *, service: str, readiness: Readiness, title: str, version: str, description: str = "", guard: Guard | None = None
) -> FastAPI:
    """A FastAPI app with the chassis' edge behaviour and `/healthz`, `/readyz`, `/metrics`.

    `guard`, if given, admits or refuses each request inside its span, before routing and the
    body limit: its refusals carry the request id and trace context like any other answer.
    """
    app = FastAPI(
        title=title, version=version, description=description,
        openapi_url="/api/openapi.json", docs_url=None, redoc_url=None,
        # A path with a trailing slash is a 404 like any unknown path: Starlette's redirect took
        # its Location from the client's Host header, and always as http.
        redirect_slashes=False,
        # The edge middleware below traces and measures every request once; FastAPI's own
        # telemetry would add three more spans per request and triple the tracing cost.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_problem_handlers(app)
    verdict = SharedVerdict(readiness)
    # The router's own list: routes added after this still name refused requests' series.
    app.add_middleware(EdgeMiddleware, service=service, routes=app.router.routes, guard=guard)

    # Swagger UI from the installed package rather than FastAPI's CDN: the docs work offline.
    app.mount(_DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/api/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{_DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{_DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{_DOCS_ASSETS}/favicon-32x32.png",
        )

    @app.get("/healthz", tags=["health"], summary="Alive while the process lives")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Ready when every dependency answers",
             responses={503: {"description": "a dependency is unavailable"}})
    async def readyz() -> Response:
        failing = await verdict.failing()
        if failing:
            return problem_response(503, "not ready: " + ", ".join(failing), errors=[
                {"field": name, "message": "unavailable"} for name in failing
            ])
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    return app


def _quiet_unreadable_requests() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, QuietUnreadableRequests) for existing in logger.filters):
        logger.addFilter(QuietUnreadableRequests())


class UvicornServer:
    """Runs an ASGI app inside the service's own event loop, so it shares the gRPC channels.

    The port is bound with SO_REUSEPORT, so that a rolling restart can start the new process
    beside this one. `shutdown` then hands over without a failed request: it stops accepting
    (new connections go to the new process), answers what still comes on open keep-alive
    connections with `Connection: close` (the client reconnects, to the new process), and only
    then lets uvicorn close what is left. Closing an idle keep-alive connection at once would
    race a request the client may be sending on it.
    """

    def __init__(
        self, app: ASGIApp, host: str, port: int, *, graceful_seconds: float = 10.0, trusted_proxies: str = ""
    ):
        # The client's address keys the rate limits. uvicorn by default believes X-Forwarded-For
        # from 127.0.0.1, where every client of a laptop city comes from, so any client could
        # name itself a new address per request; only the proxies named here are believed.
        config = uvicorn.Config(
            self._closing_when_draining, host=host, port=port, log_config=None, access_log=False, lifespan="off",
            timeout_graceful_shutdown=int(graceful_seconds), server_header=False, date_header=False,
            loop="none", http=EdgeProtocol, interface="asgi3",
            proxy_headers=bool(trusted_proxies), forwarded_allow_ips=trusted_proxies or None,
        )
        self._app = app
        self._host, self._port = host, port
        self._draining = False
        _quiet_unreadable_requests()
        self._server = uvicorn.Server(config)
        # The service's runtime owns SIGTERM/SIGINT and shuts everything down in order.
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]

    async def _closing_when_draining(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._draining or scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        await self._app(scope, receive, closing)

    async def serve(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind((self._host, self._port))
        await self._server.serve(sockets=[listener])

    async def shutdown(self, drain_seconds: float = 2.0) -> None:
        self._draining = True
        for server in getattr(self._server, "servers", []):
            server.close()  # stop accepting: from now on the kernel sends new connections elsewhere
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_seconds
        while self._server.server_state.connections and loop.time() < deadline:  # noqa: ASYNC110 - uvicorn has no event for it
            await asyncio.sleep(0.02)
        self._server.should_exit = True
