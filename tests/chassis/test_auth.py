"""The RFC 8725 token suite against the verifier every service uses."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chassis import auth

ISSUER, AUDIENCE = "agora-identity", "agora"


def _jwk(kid: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig",
            "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}


class Keys:
    def __init__(self) -> None:
        self.private = {"k1": Ed25519PrivateKey.generate()}
        self.fetches = 0
        self.down = False

    async def jwks(self) -> dict[str, Any]:
        self.fetches += 1
        if self.down:
            raise ConnectionError("identity is down")
        return {"keys": [_jwk(kid, key) for kid, key in self.private.items()]}

    def sign(self, kid: str = "k1", **overrides: Any) -> str:
        now = int(time.time())
        claims = {"sub": "user-1", "roles": ["customer"], "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
        claims.update(overrides)
        claims = {key: value for key, value in claims.items() if value is not None}
        return jwt.encode(claims, self.private[kid], algorithm="EdDSA", headers={"kid": kid})


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def verifier(keys: Keys) -> auth.TokenVerifier:
    return auth.TokenVerifier(keys.jwks, issuer=ISSUER, audience=AUDIENCE)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_a_valid_token_names_the_user_and_roles(keys: Keys, verifier: auth.TokenVerifier) -> None:
    principal = await verifier.verify(keys.sign(roles=["customer", "admin"]))
    assert principal == auth.Principal("user-1", frozenset({"customer", "admin"}))


async def test_alg_none_is_refused(keys: Keys, verifier: auth.TokenVerifier) -> None:
    payload = jwt.decode(keys.sign(), options={"verify_signature": False})
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'k1'})}.{_b64(payload)}."
    with pytest.raises(auth.Unauthenticated):
        await verifier.verify(unsigned)


async def test_hs256_signed_with_the_public_key_is_refused(keys: Keys, verifier: auth.TokenVerifier) -> None:
    public_pem = keys.private["k1"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64({"alg": "HS256", "typ": "JWT", "kid": "k1"})
    body = _b64({"sub": "attacker", "roles": ["admin"], "iss": ISSUER, "aud": AUDIENCE,
                 "iat": int(time.time()), "exp": int(time.time()) + 600})
    signature = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    with pytest.raises(auth.Unauthenticated):
        await verifier.verify(forged)


async def test_an_unknown_kid_is_refused(keys: Keys, verifier: auth.TokenVerifier) -> None:
    keys.private["rogue"] = Ed25519PrivateKey.generate()
    token = keys.sign("rogue")
    del keys.private["rogue"]
    with pytest.raises(auth.Unauthenticated, match="unknown signing key"):
        await verifier.verify(token)


async def test_tampered_claims_are_refused(keys: Keys, verifier: auth.TokenVerifier) -> None:
    header, _, signature = keys.sign().split(".")
    payload = jwt.decode(keys.sign(), options={"verify_signature": False}) | {"roles": ["admin"]}
    with pytest.raises(auth.Unauthenticated):
        await verifier.verify(f"{header}.{_b64(payload)}.{signature}")


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 60},
        {"aud": "someone-else"},
        {"iss": "https://evil.example"},
        {"sub": None},
        {"exp": None},
        {"roles": "admin"},
    ],
    ids=["expired", "wrong-aud", "wrong-iss", "no-sub", "no-exp", "roles-not-a-list"],
)
async def test_bad_claims_are_refused(keys: Keys, verifier: auth.TokenVerifier, claims: dict[str, Any]) -> None:
    with pytest.raises(auth.Unauthenticated):
        await verifier.verify(keys.sign(**claims))


async def test_a_token_without_kid_is_refused(keys: Keys, verifier: auth.TokenVerifier) -> None:
    now = int(time.time())
    token = jwt.encode({"sub": "u", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60},
                       keys.private["k1"], algorithm="EdDSA")
    with pytest.raises(auth.Unauthenticated, match="key id"):
        await verifier.verify(token)


async def test_garbage_is_refused(verifier: auth.TokenVerifier) -> None:
    for token in ["", "abc", "a.b.c", "🙂.🙂.🙂"]:
        with pytest.raises(auth.Unauthenticated):
            await verifier.verify(token)


async def test_a_rotated_key_is_found_and_the_old_one_still_verifies(keys: Keys) -> None:
    clock = [0.0]
    verifier = auth.TokenVerifier(keys.jwks, issuer=ISSUER, audience=AUDIENCE, clock=lambda: clock[0])
    old_token = keys.sign("k1")
    assert (await verifier.verify(old_token)).user_id == "user-1"
    keys.private["k2"] = Ed25519PrivateKey.generate()
    clock[0] += 11
    assert (await verifier.verify(keys.sign("k2"))).user_id == "user-1"
    assert (await verifier.verify(old_token)).user_id == "user-1"


async def test_forged_key_ids_cannot_make_us_hammer_identity(keys: Keys) -> None:
    verifier = auth.TokenVerifier(keys.jwks, issuer=ISSUER, audience=AUDIENCE, refresh_interval=0.2)
    keys.private["rogue"] = Ed25519PrivateKey.generate()
    forged = keys.sign("rogue")
    del keys.private["rogue"]

    async def refused() -> None:
        with pytest.raises(auth.Unauthenticated, match="unknown signing key"):
            await verifier.verify(forged)

    await asyncio.gather(*(refused() for _ in range(50)))
    assert keys.fetches == 1
    started = time.monotonic()
    for _ in range(3):
        await refused()
    assert keys.fetches == 4
    assert time.monotonic() - started >= 3 * 0.2 * 0.9


async def test_the_shared_key_fetch_carries_nothing_of_the_caller_that_started_it(keys: Keys) -> None:
    """Else a forged token's caller would lend the fetch its token, and identity, refusing that
    token, would fail the fetch for every valid token waiting on it."""
    forwarded = contextvars.ContextVar[str | None]("forwarded", default=None)
    seen: list[str | None] = []

    async def fetch_jwks() -> Mapping[str, Any]:
        seen.append(forwarded.get())
        return await keys.jwks()

    verifier = auth.TokenVerifier(fetch_jwks, issuer=ISSUER, audience=AUDIENCE)
    forwarded.set("Bearer forged")
    await verifier.verify(keys.sign())

    assert seen == [None]


async def test_a_key_rotated_in_just_after_a_refresh_is_still_found(keys: Keys) -> None:
    verifier = auth.TokenVerifier(keys.jwks, issuer=ISSUER, audience=AUDIENCE, refresh_interval=0.2)
    await verifier.verify(keys.sign("k1"))
    keys.private["k2"] = Ed25519PrivateKey.generate()
    assert (await verifier.verify(keys.sign("k2"))).user_id == "user-1"
    assert keys.fetches == 2


async def test_a_token_whose_key_an_unreachable_identity_cannot_give_is_unchecked_not_refused(
    keys: Keys, verifier: auth.TokenVerifier
) -> None:
    """The token may be valid: an outage to retry (503), not a 401 that sends the user to log in."""
    keys.down = True
    with pytest.raises(auth.KeysUnavailable, match="cannot fetch signing keys"):
        await verifier.verify(keys.sign())


async def test_keys_for_other_algorithms_or_malformed_are_ignored(keys: Keys) -> None:
    async def jwks() -> dict[str, Any]:
        good = await keys.jwks()
        return {"keys": [*good["keys"], {"kty": "oct", "kid": "k1", "alg": "HS256", "k": "c2VjcmV0"},
                         {"kty": "OKP", "kid": "broken", "crv": "Ed25519", "x": "!!"}]}

    verifier = auth.TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE)
    assert (await verifier.verify(keys.sign("k1"))).user_id == "user-1"


async def test_the_bearer_header_is_parsed_strictly(keys: Keys, verifier: auth.TokenVerifier) -> None:
    token = keys.sign()
    assert (await auth.principal_from_metadata({"authorization": f"Bearer {token}"}, verifier)).user_id == "user-1"
    for header in [token, f"Basic {token}", "Bearer ", ""]:
        with pytest.raises(auth.Unauthenticated):
            await auth.principal_from_metadata({"authorization": header}, verifier)


def test_roles_are_checked_where_the_work_happens() -> None:
    token = auth.current_principal.set(auth.Principal("u", frozenset({"customer"})))
    try:
        assert auth.require_principal().user_id == "u"
        with pytest.raises(auth.PermissionDenied):
            auth.require_principal("admin")
    finally:
        auth.current_principal.reset(token)
    with pytest.raises(auth.Unauthenticated):
        auth.require_principal()


def test_operator_calls_are_limited_to_the_named_callers() -> None:
    token = auth.current_caller.set("gateway")
    try:
        with pytest.raises(auth.PermissionDenied):
            auth.require_caller("cli")
        assert auth.require_caller("cli", "gateway") == "gateway"
    finally:
        auth.current_caller.reset(token)
    with pytest.raises(auth.PermissionDenied):
        auth.require_caller("cli")


async def test_old_keys_are_refreshed_in_the_background_and_a_withdrawn_key_is_dropped(keys: Keys) -> None:
    clock = [0.0]
    verifier = auth.TokenVerifier(keys.jwks, issuer=ISSUER, audience=AUDIENCE, max_age=300, clock=lambda: clock[0])
    token = keys.sign("k1")
    await verifier.verify(token)
    keys.private = {"k2": Ed25519PrivateKey.generate()}
    clock[0] += 301
    assert (await verifier.verify(token)).user_id == "user-1"  # served from the cache meanwhile
    await asyncio.sleep(0.01)
    assert keys.fetches == 2
    with pytest.raises(auth.Unauthenticated, match="unknown signing key"):
        await verifier.verify(token)


async def test_an_identity_outage_does_not_refuse_tokens_signed_with_cached_keys(keys: Keys) -> None:
    clock = [0.0]
    verifier = auth.TokenVerifier(keys.jwks, issuer=ISSUER, audience=AUDIENCE, max_age=300, clock=lambda: clock[0])
    await verifier.verify(keys.sign())
    keys.down = True
    clock[0] += 301
    for _ in range(3):
        assert (await verifier.verify(keys.sign())).user_id == "user-1"
        await asyncio.sleep(0.01)
    assert keys.fetches == 2


def count_signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    checked: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        checked.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return checked


async def test_a_verified_token_is_remembered_instead_of_checked_again(
    keys: Keys, verifier: auth.TokenVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = count_signature_checks(monkeypatch)
    token = keys.sign(roles=["customer", "admin"])

    first, again = await verifier.verify(token), await verifier.verify(token)

    assert first == again == auth.Principal(user_id="user-1", roles=frozenset({"customer", "admin"}))
    assert checked == [token]


async def test_a_remembered_token_is_refused_once_it_expires(keys: Keys) -> None:
    verifier = auth.TokenVerifier(keys.jwks, issuer=ISSUER, audience=AUDIENCE, leeway=0)
    expires = int(time.time()) + 1
    token = keys.sign(exp=expires)
    await verifier.verify(token)

    await asyncio.sleep(expires - time.time() + 0.1)

    with pytest.raises(auth.Unauthenticated, match="expired"):
        await verifier.verify(token)


async def test_only_so_many_tokens_are_remembered_the_least_recently_used_forgotten_first(
    keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = auth.TokenVerifier(keys.jwks, issuer=ISSUER, audience=AUDIENCE, remember=2)
    first, second, third = (keys.sign(sub=f"user-{n}") for n in range(3))
    for token in (first, second, first, third):
        await verifier.verify(token)
    checked = count_signature_checks(monkeypatch)

    for token in (first, third, second):
        await verifier.verify(token)

    assert checked == [second]
