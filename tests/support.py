"""Helpers many test packages share: free ports, running services, and access tokens signed the way identity
signs them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chassis import auth
from chassis.http import UvicornServer

if TYPE_CHECKING:
    from chassis.runtime import ServiceApp

ISSUER, AUDIENCE = "agora-identity", "agora"


_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now and never handed out before in this run. A test that stops a service and
    starts another on its port leaves that port free meanwhile, and services bind with
    SO_REUSEPORT: handed out again, it would let a second server share it with the first."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


@contextlib.asynccontextmanager
async def serving_http(app: Any, port: int) -> AsyncIterator[str]:
    """`app` served by the chassis' edge server on `port`, once it accepts connections; yields its URL."""
    server = UvicornServer(app, "127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.shutdown()
        await task


@contextlib.asynccontextmanager
async def running_service(app: ServiceApp) -> AsyncIterator[ServiceApp]:
    """Runs a built `app` in this event loop until the block ends; the block starts once it accepts calls."""
    stop = asyncio.Event()
    task = asyncio.create_task(app.run_until_stopped(stop))
    try:
        async with asyncio.timeout(10):
            while not app.readiness.accepting:
                if task.done():
                    await task  # a service that failed to start raises its error now, not at the timeout
                await asyncio.sleep(0.01)
        yield app
    finally:
        stop.set()
        await task


class Dependency:
    """A readiness check on a dependency a test takes away (`down = True`) and brings back."""

    def __init__(self) -> None:
        self.down = False

    async def check(self) -> None:
        if self.down:
            raise ConnectionError("unreachable")


class Tokens:
    """Signs access tokens the way identity does; a service verifies them against this JWKS."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()

    async def jwks(self) -> dict[str, Any]:
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA", "x": x}]}

    def verifier(self) -> auth.TokenVerifier:
        return auth.TokenVerifier(self.jwks, issuer=ISSUER, audience=AUDIENCE)

    def sign(self, user_id: str, *roles: str) -> str:
        """A token for `user_id` with `roles` (a customer's when none are named)."""
        now = int(time.time())
        claims = {"sub": user_id, "roles": list(roles or ["customer"]), "iss": ISSUER, "aud": AUDIENCE,
                  "iat": now, "exp": now + 600}
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": "k1"})
