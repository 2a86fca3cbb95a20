"""Verifying user access tokens, in every service (zero trust: nobody relies on the gateway).

A token is accepted only if it is a JWT signed with an allowed asymmetric algorithm by a key
in identity's JWKS (looked up by `kid`), issued by our issuer for our audience, unexpired, and
names a subject. The user's identity and roles come only from a verified token, never from a
request field.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHMS = ("EdDSA",)
_REQUIRED_CLAIMS = ["sub", "exp", "iat", "iss", "aud"]


class Unauthenticated(Exception):
    """No valid token. The message is for logs; clients get one generic answer."""


class PermissionDenied(Exception):
    """A valid token without the role the operation needs."""


@dataclass(frozen=True)
class Principal:
    user_id: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("current_principal", default=None)


def require_principal(role: str | None = None) -> Principal:
    principal = current_principal.get()
    if principal is None:
        raise Unauthenticated("no access token")
    if role is not None and role not in principal.roles:
        raise PermissionDenied(f"requires the {role} role")
    return principal


FetchJwks = Callable[[], Awaitable[Mapping[str, Any]]]


class TokenVerifier:
    """Verifies access tokens against a cached JWKS.

    An unknown `kid` triggers one JWKS refresh, at most every `refresh_interval` seconds, so a
    flood of forged key ids cannot make us hammer identity; a rotated key is picked up quickly.
    """

    def __init__(
        self,
        fetch_jwks: FetchJwks,
        *,
        issuer: str,
        audience: str,
        algorithms: tuple[str, ...] = ALGORITHMS,
        refresh_interval: float = 10.0,
        leeway: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._fetch = fetch_jwks
        self._issuer = issuer
        self._audience = audience
        self._algorithms = list(algorithms)
        self._refresh_interval = refresh_interval
        self._leeway = leeway
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._refreshed_at: float | None = None
        self._refreshing = asyncio.Lock()

    async def _refresh(self) -> None:
        async with self._refreshing:
            now = self._clock()
            if self._refreshed_at is not None and now - self._refreshed_at < self._refresh_interval:
                return
            self._refreshed_at = now
            jwks = await self._fetch()
            keys = {}
            for jwk in jwks.get("keys", []):
                if "kid" in jwk:
                    keys[jwk["kid"]] = jwt.PyJWK.from_dict(dict(jwk)).key
            self._keys = keys

    async def _key_for(self, kid: str) -> Any:
        if kid not in self._keys:
            try:
                await self._refresh()
            except Exception as error:  # identity unreachable: the token cannot be checked
                raise Unauthenticated(f"cannot fetch signing keys: {type(error).__name__}") from None
        try:
            return self._keys[kid]
        except KeyError:
            raise Unauthenticated("unknown signing key") from None

    async def verify(self, token: str) -> Principal:
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
        return Principal(user_id=subject, roles=frozenset(roles))


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
