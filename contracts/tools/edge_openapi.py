"""The edge's OpenAPI document, as the gateway serves it at /api/openapi.json.

contracts/openapi/edge.json is this document, committed, so that every change to the edge is a
change to a reviewed file, and scripts/check-contracts.sh can compare it with the base commit's.

    python contracts/tools/edge_openapi.py           prints the document
    python contracts/tools/edge_openapi.py --write   rewrites contracts/openapi/edge.json
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from chassis import auth
from chassis.health import Readiness
from gateway.app import create_api
from gateway.ratelimit import RateLimiter
from gateway.settings import GatewaySettings
from gateway.upstreams import Upstreams

COMMITTED = Path(__file__).resolve().parents[1] / "openapi" / "edge.json"


async def _no_keys() -> dict[str, Any]:
    raise RuntimeError("the document is built without verifying any token")


def edge_app() -> FastAPI:
    """The gateway's app with nothing behind it: the document depends on its routes alone, not on
    the upstreams, the rate limiter's store or the keys that verify tokens."""
    settings = GatewaySettings(service="gateway", http_port=0, mtls="off")
    upstreams = Upstreams(**{field.name: None for field in dataclasses.fields(Upstreams)})
    verifier = auth.TokenVerifier(_no_keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    return create_api(settings, Readiness(), upstreams, verifier, RateLimiter(None, "unused:"))  # type: ignore[arg-type]


def render(document: dict[str, Any]) -> str:
    """Sorted keys, so the committed file changes only when the document does."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    if argv[1:] not in ([], ["--write"]):
        print(__doc__, file=sys.stderr)
        return 2
    text = render(edge_app().openapi())
    if argv[1:] == ["--write"]:
        COMMITTED.parent.mkdir(parents=True, exist_ok=True)
        COMMITTED.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
