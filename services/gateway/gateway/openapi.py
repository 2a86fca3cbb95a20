"""The OpenAPI document says what the edge really answers (API.md, "Conventions"): every error
is an RFC 9457 problem document; any operation may be refused for a request too slow, too large or
content-coded, and any but the probes may be rate limited, refused for a malformed body, or find
an upstream unavailable, whichever route it is."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema

from chassis.http import PROBLEM_JSON
from gateway.models import ProblemDocument
from gateway.routes.orders import IDEMPOTENCY_KEY_PATTERN
from gateway.security import PROBES, required_check

_REF_TEMPLATE = "#/components/schemas/{model}"
_PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": {"$ref": _REF_TEMPLATE.format(model="ProblemDocument")}}}
_EDGE_ERRORS = {
    "429": "too many requests (Retry-After says when to try again)",
    "503": "an upstream service is unavailable (Retry-After says when to try again)",
    "504": "an upstream service did not answer in time",
}
# The edge refuses these before routing, whichever operation the request is for, probes included.
_TRANSPORT_ERRORS = {
    "408": "the request's headers or body did not arrive in time",
    "413": "request body over 1 MiB",
    "415": "a Content-Encoding other than identity: bodies are taken as they are",
    "431": "request headers over 64 KiB",
}
_BODY_ERRORS = {"400": "the body is not valid JSON"}
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
# Headers a route reads as optional so that their absence is its own 400, not FastAPI's 422,
# but that API.md requires: the document says so, and what a valid one is.
_REQUIRED_HEADERS = {"Idempotency-Key": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN}}
_BEARER = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
           "description": "The access token from `POST /api/v1/auth/login`."}


def document_problems(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _with_problems(generate())
            _with_bearer(app.openapi_schema, app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _with_problems(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    _, definitions = models_json_schema([(ProblemDocument, "serialization")], ref_template=_REF_TEMPLATE)
    schemas.update(definitions["$defs"])
    for path, operations in document["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", ()):
                if parameter["in"] == "header" and parameter["name"] in _REQUIRED_HEADERS:
                    parameter.update(required=True, schema=_REQUIRED_HEADERS[parameter["name"]])
            responses = operation["responses"]
            edge_errors = {
                **(_EDGE_ERRORS if path not in PROBES else {}),
                **(_BODY_ERRORS if "requestBody" in operation else {}),
                **_TRANSPORT_ERRORS,
            }
            for status, description in sorted(edge_errors.items()):
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = _PROBLEM_CONTENT


def _with_bearer(document: dict[str, Any], app: FastAPI) -> None:
    """The operations that want an access token say so, and `/api/docs` can send one."""
    document["components"]["securitySchemes"] = {"bearer": _BEARER}
    for route in app.routes:
        if isinstance(route, APIRoute) and required_check(route) is not None:
            for method in route.methods:
                document["paths"][route.path_format][method.lower()]["security"] = [{"bearer": []}]
