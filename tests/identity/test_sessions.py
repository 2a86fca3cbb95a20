"""Refresh tokens: single use, rotated on every refresh, a replay revokes the session."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import grpc
from agora.identity.v1 import identity_pb2

from identity import handlers
from identity.repository import Database
from tests.identity.conftest import PASSWORD, Identity, rpc_error


async def _logged_in(identity: Identity) -> identity_pb2.TokenPair:
    await identity.register("ada@example.com")
    return await identity.login("ada@example.com")


async def test_a_refresh_rotates_and_the_old_token_stops_working(identity: Identity) -> None:
    first = await _logged_in(identity)
    second = await identity.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token and second.access_token != first.access_token
    assert (await identity.me(second.access_token)).email == "ada@example.com"

    error = await rpc_error(identity.refresh(first.refresh_token))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_replaying_a_rotated_token_revokes_the_whole_session(identity: Identity) -> None:
    stolen = await _logged_in(identity)
    legitimate = await identity.refresh(stolen.refresh_token)
    newest = await identity.refresh(legitimate.refresh_token)

    await rpc_error(identity.refresh(stolen.refresh_token))
    error = await rpc_error(identity.refresh(newest.refresh_token))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_a_replay_leaves_the_users_other_sessions_alone(identity: Identity) -> None:
    phone = await _logged_in(identity)
    laptop = await identity.login("ada@example.com")
    await identity.refresh(phone.refresh_token)
    await rpc_error(identity.refresh(phone.refresh_token))
    assert (await identity.refresh(laptop.refresh_token)).refresh_token


async def test_logout_ends_the_session(identity: Identity) -> None:
    tokens = await _logged_in(identity)
    await identity.call("Logout", identity_pb2.LogoutRequest(refresh_token=tokens.refresh_token))
    error = await rpc_error(identity.refresh(tokens.refresh_token))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_logging_out_an_unknown_token_succeeds(identity: Identity) -> None:
    await identity.call("Logout", identity_pb2.LogoutRequest(refresh_token="never-issued"))


async def test_a_refresh_token_expires_after_its_lifetime(identity: Identity) -> None:
    tokens = await _logged_in(identity)
    identity.clock.advance(timedelta(days=29))
    tokens = await identity.refresh(tokens.refresh_token)
    identity.clock.advance(timedelta(days=30))
    error = await rpc_error(identity.refresh(tokens.refresh_token))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_unknown_refresh_tokens_are_refused(identity: Identity) -> None:
    await _logged_in(identity)
    for token in ["", "made-up", "x" * 10_000]:
        error = await rpc_error(identity.refresh(token))
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_refresh_tokens_are_stored_only_as_hashes(identity: Identity) -> None:
    tokens = await _logged_in(identity)
    stored = await identity.pool.fetchval("SELECT digest FROM refresh_tokens")
    assert stored == hashlib.sha256(tokens.refresh_token.encode()).digest()


async def test_an_account_made_admin_loses_the_sessions_it_had_and_a_new_login_is_admin(identity: Identity) -> None:
    """Whoever registered the email before the operator named it admin must not keep a session
    that a refresh, which reads the roles again, would turn into an admin session."""
    before = await _logged_in(identity)
    await identity.call(
        "EnsureAdmin", identity_pb2.EnsureAdminRequest(email="ada@example.com", password="operator-chosen"), caller="cli"
    )

    error = await rpc_error(identity.refresh(before.refresh_token))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    principal = await identity.verifier().verify((await identity.login("ada@example.com", "operator-chosen")).access_token)
    assert principal.roles == {"customer", "admin"}


async def test_an_admin_named_again_keeps_its_sessions(identity: Identity) -> None:
    """`agora up` names the admin on every start: that must not log the admin out each time."""
    ensure = identity_pb2.EnsureAdminRequest(email="ada@example.com", password=PASSWORD)
    await identity.call("EnsureAdmin", ensure, caller="cli")
    tokens = await identity.login("ada@example.com")
    await identity.call("EnsureAdmin", ensure, caller="cli")

    principal = await identity.verifier().verify((await identity.refresh(tokens.refresh_token)).access_token)
    assert principal.roles == {"customer", "admin"}


async def test_sessions_are_forgotten_once_none_of_their_tokens_can_refresh(identity: Identity) -> None:
    db = Database(identity.pool)
    await identity.register("ada@example.com")
    old = await identity.login("ada@example.com")
    await identity.refresh(old.refresh_token)
    identity.clock.advance(timedelta(days=29))
    recent = await identity.login("ada@example.com")

    assert await handlers.forget_expired_sessions(db=db, clock=identity.clock) == 0
    identity.clock.advance(timedelta(days=2))
    assert await handlers.forget_expired_sessions(db=db, clock=identity.clock) == 1

    assert await identity.pool.fetchval("SELECT count(*) FROM refresh_families") == 1
    assert await identity.pool.fetchval("SELECT count(*) FROM refresh_tokens") == 1
    assert (await identity.refresh(recent.refresh_token)).access_token


async def test_a_session_that_keeps_refreshing_keeps_only_its_tokens_that_have_not_expired(identity: Identity) -> None:
    db = Database(identity.pool)
    await identity.register("ada@example.com")
    tokens = await identity.login("ada@example.com")
    for _ in range(5):
        tokens = await identity.refresh(tokens.refresh_token)
    identity.clock.advance(timedelta(days=20))
    for _ in range(3):
        tokens = await identity.refresh(tokens.refresh_token)
    identity.clock.advance(timedelta(days=11))  # the login's token and the first five rotations expired

    assert await handlers.forget_expired_sessions(db=db, clock=identity.clock) == 0
    assert await identity.pool.fetchval("SELECT count(*) FROM refresh_tokens") == 3  # 2 rotated, the newest
    assert (await identity.refresh(tokens.refresh_token)).access_token
