"""Registration, login and the account, through identity's real gRPC server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import grpc
import jwt
import pytest
from agora.identity.v1 import identity_pb2
from prometheus_client import REGISTRY

import identity as identity_package
from chassis.grpc import FIELD_VIOLATIONS_KEY
from identity.passwords import PasswordHasher
from tests.identity.conftest import PASSWORD, Identity, rpc_error


async def test_a_registered_user_logs_in_and_reads_their_account(identity: Identity) -> None:
    user = await identity.register("Ada@Example.com", name="Ada Lovelace")
    assert (user.email, user.name, list(user.roles)) == ("ada@example.com", "Ada Lovelace", ["customer"])

    tokens = await identity.login("ada@example.com")
    assert tokens.token_type == "Bearer" and tokens.expires_in == 900 and tokens.refresh_token

    me = await identity.me(tokens.access_token)
    assert (me.user_id, me.email, me.name) == (user.user_id, "ada@example.com", "Ada Lovelace")
    assert list(me.roles) == ["customer"]


async def test_the_access_token_is_a_short_lived_eddsa_jwt_any_service_can_verify(identity: Identity) -> None:
    user = await identity.register("ada@example.com")
    token = (await identity.login("ada@example.com")).access_token

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "EdDSA" and header["kid"]
    assert claims["sub"] == user.user_id and claims["roles"] == ["customer"]
    assert (claims["iss"], claims["aud"]) == ("agora-identity", "agora")
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"]
    assert (await identity.verifier().verify(token)).user_id == user.user_id


async def test_an_email_is_taken_whatever_its_case(identity: Identity) -> None:
    await identity.register("ada@example.com")
    error = await rpc_error(identity.register("  ADA@example.COM"))
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS


async def test_invalid_registrations_name_every_bad_field(identity: Identity) -> None:
    error = await rpc_error(identity.register("not-an-email", password="x" * 7, name=" "))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    violations = json.loads(dict(error.trailing_metadata())[FIELD_VIOLATIONS_KEY])
    assert [violation["field"] for violation in violations] == ["email", "password", "name"]

    error = await rpc_error(identity.register("ada@example.com", password="x" * 129))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (await identity.register("ada@example.com", password="x" * 128)).user_id


async def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(identity: Identity) -> None:
    await identity.register("ada@example.com")
    wrong_password = await rpc_error(identity.login("ada@example.com", "wrong password"))
    unknown_email = await rpc_error(identity.login("nobody@example.com", "wrong password"))
    assert wrong_password.code() is unknown_email.code() is grpc.StatusCode.UNAUTHENTICATED
    assert wrong_password.details() == unknown_email.details()


async def test_an_unknown_email_costs_the_same_password_check_as_a_wrong_password(
    identity: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No timing to tell them apart: each refusal runs one Argon2id check with the same cost
    parameters (counted, not timed, so a busy machine cannot make this flaky)."""
    await identity.register("ada@example.com")
    checked: list[str] = []
    real_check = PasswordHasher._verify

    def counting_check(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
        checked.append(password_hash)
        return real_check(hasher, password_hash, password)

    monkeypatch.setattr(PasswordHasher, "_verify", counting_check)
    await rpc_error(identity.login("ada@example.com", "wrong password"))
    await rpc_error(identity.login("nobody@example.com", "wrong password"))

    assert [password_hash.rsplit("$", 2)[0] for password_hash in checked] == ["$argon2id$v=19$m=19456,t=2,p=1"] * 2
    assert checked[0] != checked[1]

    checked.clear()  # a password whose normal form differs is checked twice for a real account
    await rpc_error(identity.login("ada@example.com", "wrong \ufb01ve"))
    known = len(checked)
    await rpc_error(identity.login("nobody@example.com", "wrong \ufb01ve"))
    assert known == len(checked) - known == 2


async def test_the_length_rule_holds_for_the_password_stored_however_it_was_typed(identity: Identity) -> None:
    """Stored as its NFKC form: eight characters that compose to four are a four-character password,
    and a password of the right length logs in typed in any form, composed or not."""
    short = await rpc_error(identity.register("ada@example.com", password="e\u0301" * 4))
    long = await rpc_error(identity.register("ada@example.com", password="\ufb03" * 43))
    assert short.code() is long.code() is grpc.StatusCode.INVALID_ARGUMENT
    await identity.register("ada@example.com", password="\u00e9" * 128)
    assert (await identity.login("ada@example.com", "e\u0301" * 128)).access_token  # 256 characters as typed


async def test_passwords_are_stored_as_argon2id_hashes(identity: Identity) -> None:
    await identity.register("ada@example.com")
    stored = await identity.pool.fetchval("SELECT password_hash FROM users")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in stored


async def test_reading_the_account_needs_a_valid_access_token(identity: Identity) -> None:
    await identity.register("ada@example.com")
    token = (await identity.login("ada@example.com")).access_token
    missing = await rpc_error(identity.call("GetUser", identity_pb2.GetUserRequest()))
    forged = await rpc_error(identity.me(token[:-4] + "AAAA"))
    assert missing.code() is forged.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_registration_publishes_user_registered_through_the_outbox(identity: Identity) -> None:
    user = await identity.register("ada@example.com", name="Ada")
    [event] = await identity.published_events(at_least=1)
    assert event["type"] == "agora.identity.UserRegistered.v1" and event["subject"] == user.user_id
    assert event["data"] == {"user_id": user.user_id, "email": "ada@example.com", "name": "Ada"}


async def test_a_refused_registration_publishes_nothing(identity: Identity) -> None:
    await identity.register("ada@example.com")
    await rpc_error(identity.register("ADA@example.com"))
    await rpc_error(identity.register("bad email"))
    last = await identity.register("bob@example.com")
    assert [event["data"]["email"] for event in await identity.published_events(at_least=2)] == [
        "ada@example.com", last.email,
    ]


COMPOSED_EMAIL = "jos\u00e9@example.com"
DECOMPOSED_EMAIL = "jose\u0301@example.com"


async def test_an_email_is_one_account_however_its_accents_were_typed(identity: Identity) -> None:
    """A macOS keyboard may send é as e plus a combining accent, a Windows one as one character."""
    user = await identity.register(DECOMPOSED_EMAIL)
    assert user.email == COMPOSED_EMAIL
    error = await rpc_error(identity.register(COMPOSED_EMAIL))
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
    assert (await identity.me((await identity.login(COMPOSED_EMAIL)).access_token)).user_id == user.user_id


async def test_a_password_is_the_same_password_in_any_unicode_normal_form(identity: Identity) -> None:
    await identity.register("ada@example.com", password="caf\u00e9 \ufb01ve \uff21")
    for typed in ("cafe\u0301 \ufb01ve \uff21", "caf\u00e9 five A"):
        assert (await identity.login("ada@example.com", typed)).access_token
    await rpc_error(identity.login("ada@example.com", "cafe five A"))


async def test_a_password_hashed_as_typed_before_normalization_logs_in_and_is_rehashed(identity: Identity) -> None:
    user = await identity.register("ada@example.com")
    typed = "cafe\u0301-au-lait"
    hasher = PasswordHasher()
    await identity.pool.execute(
        "UPDATE users SET password_hash = $1 WHERE id = $2", await hasher.hash(typed), uuid.UUID(user.user_id)
    )

    assert (await identity.login("ada@example.com", typed)).access_token

    stored = await identity.pool.fetchval("SELECT password_hash FROM users")
    assert await hasher.verify(stored, "caf\u00e9-au-lait")
    assert (await identity.login("ada@example.com", "caf\u00e9-au-lait")).access_token


async def test_the_migration_gives_accounts_registered_before_their_nfc_email(identity: Identity) -> None:
    """Rows as an older identity wrote them: only those whose NFC form is free take it."""
    migration = (Path(identity_package.__file__).parent / "migrations" / "002_nfc_emails.sql").read_text()
    rows = [("zoe\u0308@example.com", 1), ("anne\u0301@example.com", 2), ("ann\u00e9@example.com", 3),
            ("rene\u0301@example.com", 4), ("ren\u00e9\u0301@example.com", 5)]
    for email, minute in rows:
        await identity.pool.execute(
            "INSERT INTO users (id, email, name, password_hash, roles, created_at)"
            " VALUES ($1, $2, 'n', 'h', ARRAY['customer'], '2026-01-01'::timestamptz + $3 * interval '1 minute')",
            uuid.uuid4(), email, minute,
        )

    await identity.pool.execute(migration)

    emails = [row["email"] for row in await identity.pool.fetch("SELECT email FROM users ORDER BY created_at")]
    assert emails == ["zo\u00eb@example.com", "anne\u0301@example.com", "ann\u00e9@example.com",
                      "ren\u00e9@example.com", "ren\u00e9\u0301@example.com"]


async def test_refused_logins_are_counted_by_why_so_a_stuffing_attack_shows(identity: Identity) -> None:
    """An unknown email is counted, not logged: a line naming no account tells nothing, and one
    naming the email would put guessed addresses in the logs."""
    def refused(reason: str) -> float:
        return REGISTRY.get_sample_value("agora_identity_logins_refused_total", {"reason": reason}) or 0.0

    await identity.register("ada@example.com")
    before = {reason: refused(reason) for reason in ("unknown_email", "wrong_password", "impossible_password")}
    for email, password in [("nobody@example.com", "wrong password"), ("nobody2@example.com", "wrong password"),
                            ("ada@example.com", "wrong password"), ("ada@example.com", "short")]:
        await rpc_error(identity.login(email, password))

    assert {reason: refused(reason) - count for reason, count in before.items()} == {
        "unknown_email": 2, "wrong_password": 1, "impossible_password": 1,
    }
