"""Verifying user access tokens and calling services, in every service (zero trust: nobody relies
on the gateway).

A token is accepted only if it is a JWT signed with an allowed asymmetric algorithm (RFC 8725:
the algorithm comes from our allowlist, never from the token) by a key in identity's JWKS,
looked up by `kid`; issued by our issuer for our audience; unexpired, not issued in the future;
and names a subject. The user's identity and roles come only from a verified token, never from
a request field. The calling service's name comes from its mTLS certificate (see chassis.grpc).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from chassis.logs import get_logger

ALGORITHMS = ("EdDSA",)
_REQUIRED_CLAIMS = ["sub", "exp", "iat", "iss", "aud"]

log = get_logger(__name__)


class Unauthenticated(Exception):
    """No valid token. The message is for logs; clients get one generic answer."""


class KeysUnavailable(Exception):
    """The token may be valid, but its signing key is not known yet and identity, which publishes
    the keys, did not answer: an outage to retry (503, UNAVAILABLE), not the caller's 401."""

    dependency = "identity"


class PermissionDenied(Exception):
    """A valid token without the role the operation needs, or a caller that may not ask for it."""


@dataclass(frozen=True)
class Principal:
    user_id: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("current_principal", default=None)
# The service that made this gRPC call, as its mTLS certificate names it; set by the gRPC server.
current_caller: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_caller", default=None)


def require_principal(role: str | None = None) -> Principal:
    principal = current_principal.get()
    if principal is None:
        raise Unauthenticated("no access token")
    if role is not None and role not in principal.roles:
        raise PermissionDenied(f"requires the {role} role")
    return principal


def require_caller(*services: str) -> str:
    """For operations only some services may ask for, beyond the service-wide caller allowlist."""
    caller = current_caller.get()
    if caller not in services:
        raise PermissionDenied(f"only {', '.join(services)} may call this")
    return caller


FetchJwks = Callable[[], Awaitable[Mapping[str, Any]]]


class TokenVerifier:
    """Verifies access tokens against a cached JWKS.

    A token whose `kid` is not cached makes the verifier fetch the JWKS again. Fetches are
    coalesced (concurrent callers share one) and at least `refresh_interval` seconds apart: a
    caller arriving sooner waits for the next allowed fetch instead of being refused, so a key
    rotated in a moment ago is still found, while a flood of forged key ids costs identity at
    most one call per interval. Keys older than `max_age` seconds are refreshed in the
    background while the cached ones keep serving, so a key identity stops publishing is
    dropped here too, and an identity outage does not slow down verification.

    A token once verified is remembered (up to `remember` tokens, the least recently used
    forgotten first) with the key that verified it, so a client's next calls with it cost a
    dictionary lookup instead of a signature check. It is remembered only while it is unexpired
    (with the same leeway) and while that very key is still the one published under its `kid`:
    every JWKS fetch makes new key objects, so a withdrawn or replaced key stops vouching for
    the tokens it verified at the next refresh, as it does for tokens never seen before.
    """

    def __init__(
        self,
        fetch_jwks: FetchJwks,
        *,
        issuer: str,
        audience: str,
        algorithms: tuple[str, ...] = ALGORITHMS,
        refresh_interval: float = 1.0,
        max_age: float = 300.0,
        leeway: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        remember: int = 4096,
    ):
        self._fetch_jwks = fetch_jwks
        self._issuer = issuer
        self._audience = audience
        self._algorithms = list(algorithms)
        self._refresh_interval = refresh_interval
        self._max_age = max_age
        self._leeway = leeway
        self._clock = clock
        self._remember = remember
        # token -> (principal, kid, the key that verified it, expiry)
        self._verified: OrderedDict[str, tuple[Principal, str, Any, float]] = OrderedDict()
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._pending: asyncio.Future[None] | None = None

    async def verify(self, token: str) -> Principal:
        remembered = self._verified.get(token)
        if remembered is not None:
            principal, kid, key, expires = remembered
            if expires > time.time() - self._leeway and self._keys.get(kid) is key:
                self._verified.move_to_end(token)
                self._refresh_if_old()
                return principal
            del self._verified[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"malformed token: {error}") from None
        if header.get("alg") not in self._algorithms:
            raise Unauthenticated(f"algorithm {header.get('alg')!r} is not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("token has no key id")
        key = await self._key_for(kid)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"token refused: {error}") from None
        subject, roles = claims.get("sub"), claims.get("roles", [])
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("token has no subject")
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise Unauthenticated("token roles are malformed")
        principal = Principal(user_id=subject, roles=frozenset(roles))
        self._verified[token] = (principal, kid, key, float(claims["exp"]))
        if len(self._verified) > self._remember:
            self._verified.popitem(last=False)
        return principal

    async def _key_for(self, kid: str) -> Any:
        if kid not in self._keys:
            try:
                # Shielded: one caller giving up (its deadline passed) must not cancel the others' fetch.
                await asyncio.shield(self._fetch())
            except Exception as error:  # identity unreachable: the token cannot be checked
                raise KeysUnavailable(f"cannot fetch signing keys: {type(error).__name__}") from None
        else:
            self._refresh_if_old()
        try:
            return self._keys[kid]
        except KeyError:
            raise Unauthenticated("unknown signing key") from None

    def _refresh_if_old(self) -> None:
        if self._fetched_at is not None and self._clock() - self._fetched_at > self._max_age:
            self._fetch().add_done_callback(_log_failed_refresh)

    def _fetch(self) -> asyncio.Future[None]:
        """The JWKS fetch in progress, or a new one."""
        if self._pending is None:
            # In a context of its own: the fetch every waiting caller shares must not carry the
            # first one's token, deadline or trace (identity would judge the fetch by that token).
            self._pending = asyncio.get_running_loop().create_task(
                self._fetch_when_allowed(), context=contextvars.Context()
            )
        return self._pending

    async def _fetch_when_allowed(self) -> None:
        try:
            if self._fetched_at is not None:
                wait = self._fetched_at + self._refresh_interval - self._clock()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._fetched_at = self._clock()
            self._keys = _usable_keys(await self._fetch_jwks(), self._algorithms)
        finally:
            self._pending = None


def _log_failed_refresh(fetch: asyncio.Future[None]) -> None:
    if not fetch.cancelled() and fetch.exception() is not None:
        log.warning("jwks_refresh_failed", error=type(fetch.exception()).__name__)


def _usable_keys(jwks: Mapping[str, Any], algorithms: list[str]) -> dict[str, Any]:
    """Keys by id; a key for another algorithm, or one that does not parse, is left out."""
    keys = {}
    for jwk in jwks.get("keys", []):
        kid = jwk.get("kid") if isinstance(jwk, Mapping) else None
        if not isinstance(kid, str) or jwk.get("alg", algorithms[0]) not in algorithms:
            continue
        try:
            keys[kid] = jwt.PyJWK.from_dict(dict(jwk)).key
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
    return keys


async def principal_from_metadata(metadata: Mapping[str, str], verifier: TokenVerifier) -> Principal:
    """Reads `authorization: Bearer <token>` from gRPC metadata or HTTP headers and verifies it."""
    header = metadata.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization is not a bearer token")
    return await verifier.verify(token.strip())


def jwks_from_json(text: str) -> Mapping[str, Any]:
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError("a JWKS is a JSON object")
    return document
