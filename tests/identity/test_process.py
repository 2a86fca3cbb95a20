"""`python -m identity` as the runner starts it: configured from its environment, logging JSON
on stdout, and never writing a password, a token or a key there."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import asyncpg
import grpc
from agora.identity.v1 import identity_pb2, identity_pb2_grpc

from chassis.grpc import CALLER_METADATA
from chassis.messaging import NatsBus
from tests.conftest import NATS_URL, unique_city
from tests.identity.conftest import PASSWORD, rpc_error
from tests.support import free_port

ADMIN_PASSWORD = "operator chosen secret"


async def _wait_until_ready(http_port: int, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(30):
        while process.returncode is None:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{http_port}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise AssertionError("identity exited before it was ready")


async def _exercise(stub: identity_pb2_grpc.IdentityServiceStub) -> list[str]:
    """Every operation, the failing ones too; returns every secret that went over the wire."""
    gateway, cli = [(CALLER_METADATA, "gateway")], [(CALLER_METADATA, "cli")]
    await stub.Register(identity_pb2.RegisterRequest(email="ada@example.com", password=PASSWORD, name="Ada"),
                        metadata=gateway)
    await rpc_error(stub.Register(identity_pb2.RegisterRequest(email="ada@example.com", password=PASSWORD, name="A"),
                                  metadata=gateway))
    await rpc_error(stub.Register(identity_pb2.RegisterRequest(email="bad", password="short-pw", name="A"),
                                  metadata=gateway))
    for email in ["ada@example.com", "nobody@example.com"]:
        await rpc_error(stub.Login(identity_pb2.LoginRequest(email=email, password="wrong " + PASSWORD),
                                   metadata=gateway))
    first = await stub.Login(identity_pb2.LoginRequest(email="ada@example.com", password=PASSWORD), metadata=gateway)
    # Only the edge, which limits guesses, may try passwords: another caller identity accepts may not.
    for attempt in (stub.Login(identity_pb2.LoginRequest(email="ada@example.com", password=PASSWORD), metadata=cli),
                    stub.Register(identity_pb2.RegisterRequest(email="eve@example.com", password=PASSWORD, name="Eve"),
                                  metadata=cli),
                    stub.Refresh(identity_pb2.RefreshRequest(refresh_token=first.refresh_token), metadata=cli),
                    stub.Logout(identity_pb2.LogoutRequest(refresh_token=first.refresh_token), metadata=cli)):
        assert (await rpc_error(attempt)).code() is grpc.StatusCode.PERMISSION_DENIED
    await stub.GetUser(identity_pb2.GetUserRequest(), metadata=[*gateway, ("authorization", f"Bearer {first.access_token}")])
    await rpc_error(stub.GetUser(identity_pb2.GetUserRequest(),
                                 metadata=[*gateway, ("authorization", f"Bearer {first.access_token}x")]))
    second = await stub.Refresh(identity_pb2.RefreshRequest(refresh_token=first.refresh_token), metadata=gateway)
    await rpc_error(stub.Refresh(identity_pb2.RefreshRequest(refresh_token=first.refresh_token), metadata=gateway))
    await stub.EnsureAdmin(identity_pb2.EnsureAdminRequest(email="root@example.com", password=ADMIN_PASSWORD),
                           metadata=cli)
    await stub.RotateSigningKey(identity_pb2.RotateSigningKeyRequest(), metadata=cli)
    third = await stub.Login(identity_pb2.LoginRequest(email="root@example.com", password=ADMIN_PASSWORD),
                             metadata=gateway)
    await stub.Logout(identity_pb2.LogoutRequest(refresh_token=third.refresh_token), metadata=gateway)
    secrets = [PASSWORD, ADMIN_PASSWORD]
    for pair in (first, second, third):
        secrets.append(pair.refresh_token)
        secrets.extend(pair.access_token.split(".")[1:])  # the header part is the same for every token
    return secrets


async def test_the_service_runs_as_a_process_and_never_logs_secrets(fresh_database: str, tmp_path: Path) -> None:
    city, grpc_port, http_port = unique_city(), free_port(), free_port()
    environment = os.environ | {
        "AGORA_SERVICE": "identity", "AGORA_CITY": city, "AGORA_HOME": str(tmp_path),
        "AGORA_GRPC_PORT": str(grpc_port), "AGORA_HTTP_PORT": str(http_port), "AGORA_DSN": fresh_database,
        "AGORA_NATS_URL": NATS_URL, "AGORA_MTLS": "off", "AGORA_ALLOWED_CALLERS": "gateway,cli",
    }
    output = tmp_path / "stdout.log"
    with output.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "identity", env=environment, stdout=sink, stderr=asyncio.subprocess.STDOUT
        )
    try:
        await _wait_until_ready(http_port, process)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            secrets = await _exercise(identity_pb2_grpc.IdentityServiceStub(channel))
        connection = await asyncpg.connect(fresh_database)
        try:
            secrets.extend(await connection.fetchval("SELECT array_agg(password_hash) FROM users"))
        finally:
            await connection.close()
        secrets.append((tmp_path / "secrets" / "identity-signing.kek").read_text().strip())
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()
        bus = NatsBus(NATS_URL, city)
        await bus.connect()
        await bus.delete_streams()
        await bus.close()

    assert process.returncode == 0
    lines = output.read_text().splitlines()
    events = {json.loads(line).get("event") for line in lines if line.startswith("{")}
    assert {"user_registered", "login_refused", "refresh_token_reused", "admin_ensured", "signing_key_rotated"} <= events
    leaked = [secret for secret in secrets if any(secret in line for line in lines)]
    assert leaked == []
