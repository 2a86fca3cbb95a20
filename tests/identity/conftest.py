"""Identity as it runs: the real bootstrap and chassis gRPC server on a throwaway database."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import nats
import nats.js.errors
import pytest
from agora.identity.v1 import identity_pb2, identity_pb2_grpc

from chassis import auth
from chassis.grpc import CALLER_METADATA
from chassis.messaging import NatsBus
from chassis.runtime import ServiceApp
from identity.bootstrap import IdentitySettings, build
from tests.conftest import NATS_URL, unique_city
from tests.support import free_port, running_service

PASSWORD = "correct horse battery"


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Identity:
    """A running identity service and what a test needs to drive and inspect it."""

    stub: identity_pb2_grpc.IdentityServiceStub
    pool: asyncpg.Pool
    clock: Clock
    settings: IdentitySettings

    async def call(self, method: str, request: Any, *, caller: str = "gateway", access_token: str | None = None) -> Any:
        metadata = [(CALLER_METADATA, caller)]
        if access_token is not None:
            metadata.append(("authorization", f"Bearer {access_token}"))
        return await getattr(self.stub, method)(request, metadata=metadata, timeout=10)

    async def register(self, email: str, password: str = PASSWORD, name: str = "Ada") -> Any:
        return await self.call("Register", identity_pb2.RegisterRequest(email=email, password=password, name=name))

    async def login(self, email: str, password: str = PASSWORD) -> Any:
        return await self.call("Login", identity_pb2.LoginRequest(email=email, password=password))

    async def refresh(self, refresh_token: str) -> Any:
        return await self.call("Refresh", identity_pb2.RefreshRequest(refresh_token=refresh_token))

    async def me(self, access_token: str) -> Any:
        return await self.call("GetUser", identity_pb2.GetUserRequest(), access_token=access_token)

    async def published_events(self, at_least: int) -> list[dict[str, Any]]:
        """The CloudEvents identity has published so far on its stream, once there are `at_least`."""
        connection = await nats.connect(NATS_URL)
        try:
            stream = await _stream_of(connection.jetstream(), f"{self.settings.city}_identity".upper(), at_least)
            return [json.loads(message.data) for message in stream]
        finally:
            await connection.close()

    def verifier(self) -> auth.TokenVerifier:
        """What any other service uses: the JWKS fetched over gRPC."""

        async def fetch_jwks() -> Any:
            response = await self.call("GetJwks", identity_pb2.GetJwksRequest())
            return auth.jwks_from_json(response.jwks_json)

        return auth.TokenVerifier(fetch_jwks, issuer=self.settings.jwt_issuer, audience=self.settings.jwt_audience)


async def _stream_of(jetstream: Any, stream: str, at_least: int) -> list[Any]:
    async with asyncio.timeout(10):
        while True:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                state = (await jetstream.stream_info(stream)).state
                if state.messages >= at_least:
                    return [await jetstream.get_msg(stream, seq) for seq in range(state.first_seq, state.last_seq + 1)]
            await asyncio.sleep(0.05)


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def identity_settings(dsn: str, home: Path, city: str) -> IdentitySettings:
    return IdentitySettings(
        service="identity", city=city, home=home, grpc_port=free_port(), http_port=free_port(), dsn=dsn,
        nats_url=NATS_URL, mtls="off", allowed_callers=frozenset({"gateway", "cli"}),
    )


@contextlib.asynccontextmanager
async def running(settings: IdentitySettings, clock: Callable[[], datetime]) -> AsyncIterator[ServiceApp]:
    app = ServiceApp(settings)
    await build(app, clock=clock)
    async with running_service(app):
        yield app


@pytest.fixture
async def identity(fresh_database: str, tmp_path: Path) -> AsyncIterator[Identity]:
    city = unique_city()
    settings = identity_settings(fresh_database, tmp_path, city)
    clock = Clock()
    try:
        async with (
            running(settings, clock),
            grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel,
        ):
            pool = await asyncpg.create_pool(fresh_database, min_size=1, max_size=2)
            try:
                yield Identity(identity_pb2_grpc.IdentityServiceStub(channel), pool, clock, settings)
            finally:
                await pool.close()
    finally:
        bus = NatsBus(NATS_URL, city)
        await bus.connect()
        await bus.delete_streams()
        await bus.close()
