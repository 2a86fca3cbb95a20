"""Signing keys: rotation without breaking live tokens, sealed at rest; the operator's commands."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import grpc
import jwt
import pytest
from agora.identity.v1 import identity_pb2
from cryptography.hazmat.primitives import serialization

from identity import handlers, tokens
from identity.repository import Database
from tests.identity.conftest import Identity, rpc_error


async def _rotate(identity: Identity) -> str:
    return (await identity.call("RotateSigningKey", identity_pb2.RotateSigningKeyRequest(), caller="cli")).kid


async def _published_kids(identity: Identity) -> list[str]:
    response = await identity.call("GetJwks", identity_pb2.GetJwksRequest())
    return [key["kid"] for key in json.loads(response.jwks_json)["keys"]]


async def test_rotation_keeps_tokens_signed_with_the_old_key_valid(identity: Identity) -> None:
    await identity.register("ada@example.com")
    old_token = (await identity.login("ada@example.com")).access_token
    verifier = identity.verifier()
    await verifier.verify(old_token)

    new_kid = await _rotate(identity)
    new_token = (await identity.login("ada@example.com")).access_token
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid != jwt.get_unverified_header(old_token)["kid"]
    assert sorted(await _published_kids(identity)) == sorted({new_kid, jwt.get_unverified_header(old_token)["kid"]})
    assert (await verifier.verify(new_token)).user_id == (await verifier.verify(old_token)).user_id
    assert (await identity.me(old_token)).email == (await identity.me(new_token)).email


async def test_a_retired_key_leaves_the_jwks_once_its_tokens_have_expired(identity: Identity) -> None:
    [first_kid] = await _published_kids(identity)
    second_kid = await _rotate(identity)
    identity.clock.advance(timedelta(minutes=15, seconds=59))
    assert first_kid in await _published_kids(identity)
    identity.clock.advance(timedelta(seconds=2))
    assert await _published_kids(identity) == [second_kid]
    await _rotate(identity)
    assert await identity.pool.fetchval("SELECT count(*) FROM signing_keys WHERE kid = $1", first_kid) == 0


async def test_only_the_operator_may_rotate_keys_or_ensure_an_admin(identity: Identity) -> None:
    rotate = await rpc_error(identity.call("RotateSigningKey", identity_pb2.RotateSigningKeyRequest()))
    ensure = await rpc_error(identity.call(
        "EnsureAdmin", identity_pb2.EnsureAdminRequest(email="eve@example.com", password="x" * 12, name="Eve")
    ))
    assert rotate.code() is ensure.code() is grpc.StatusCode.PERMISSION_DENIED
    assert await identity.pool.fetchval("SELECT count(*) FROM users") == 0


async def test_ensure_admin_is_idempotent_and_grants_the_admin_role(identity: Identity) -> None:
    async def ensure(password: str) -> identity_pb2.User:
        request = identity_pb2.EnsureAdminRequest(email="Root@Example.com", password=password)
        response = await identity.call("EnsureAdmin", request, caller="cli")
        assert response.has_requested_password
        return response.user

    first = await ensure("first password")
    again = await ensure("second password")
    assert first.user_id == again.user_id and set(again.roles) == {"customer", "admin"}
    assert (first.email, first.name) == ("root@example.com", "Administrator")
    await rpc_error(identity.login("root@example.com", "first password"))
    tokens_now = await identity.login("root@example.com", "second password")
    assert (await identity.verifier().verify(tokens_now.access_token)).is_admin


async def test_ensure_admin_promotes_an_existing_customer(identity: Identity) -> None:
    customer = await identity.register("ada@example.com")
    request = identity_pb2.EnsureAdminRequest(email="ada@example.com", password="new password", name="Ignored")
    admin = (await identity.call("EnsureAdmin", request, caller="cli")).user
    assert (admin.user_id, admin.name, set(admin.roles)) == (customer.user_id, "Ada", {"customer", "admin"})


async def test_a_generated_admin_password_never_replaces_an_existing_admin(identity: Identity) -> None:
    async def ensure(email: str, password: str) -> identity_pb2.EnsureAdminResponse:
        request = identity_pb2.EnsureAdminRequest(email=email, password=password, only_if_no_admin=True)
        return await identity.call("EnsureAdmin", request, caller="cli")

    created = await ensure("admin@agora.local", "generated password one")
    assert created.has_requested_password and created.user.email == "admin@agora.local"
    kept = await ensure("admin@agora.local", "generated password two")
    assert not kept.has_requested_password and kept.user.user_id == created.user.user_id
    await identity.login("admin@agora.local", "generated password one")
    await rpc_error(identity.login("admin@agora.local", "generated password two"))


async def test_private_keys_are_sealed_at_rest(identity: Identity) -> None:
    kid, sealed = await identity.pool.fetchrow("SELECT kid, sealed_private_key FROM signing_keys")
    vault = tokens.KeyVault(tokens.load_or_create_kek(identity.settings.kek_path))
    raw = vault.open(kid, sealed).private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    assert raw not in sealed
    assert identity.settings.kek_path.stat().st_mode & 0o077 == 0
    with pytest.raises(ValueError, match="key-encryption key"):
        tokens.KeyVault(b"\0" * 32).open(kid, sealed)


async def test_a_start_with_another_key_encryption_key_stops_at_once(identity: Identity) -> None:
    stranger = tokens.KeyVault(bytes(range(32)))
    with pytest.raises(ValueError, match="key-encryption key"):
        await handlers.ensure_signing_key(db=Database(identity.pool), vault=stranger, clock=identity.clock)


async def test_replicas_starting_together_create_one_signing_key(identity: Identity) -> None:
    await identity.pool.execute("DELETE FROM signing_keys")
    vault = tokens.KeyVault(tokens.load_or_create_kek(identity.settings.kek_path))
    db = Database(identity.pool)
    await asyncio.gather(*(handlers.ensure_signing_key(db=db, vault=vault, clock=identity.clock) for _ in range(4)))
    assert await identity.pool.fetchval("SELECT count(*) FROM signing_keys") == 1


def test_replicas_creating_the_key_encryption_key_together_agree(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "identity-signing.kek"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: tokens.load_or_create_kek(path), range(8)))
    assert len(keys) == 1 and len(keys.pop()) == 32
    assert [p.name for p in path.parent.iterdir()] == ["identity-signing.kek"]
