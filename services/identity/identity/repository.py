"""All of identity's SQL (asyncpg). Handlers get a `Repository` bound to one transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from identity.domain import EmailTaken, StoredRefreshToken, User

# Any constant: serializes the creation of the first signing key between replicas.
_SIGNING_KEY_LOCK = 0x1D_E471_7E


def _user(row: asyncpg.Record) -> User:
    return User(id=str(row["id"]), email=row["email"], name=row["name"], roles=frozenset(row["roles"]))


class Repository:
    def __init__(self, connection: asyncpg.Connection):
        self.connection = connection

    # ------------------------------------------------------------ users

    async def add_user(self, user: User, password_hash: str, now: datetime) -> None:
        try:
            await self.connection.execute(
                "INSERT INTO users (id, email, name, password_hash, roles, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                uuid.UUID(user.id), user.email, user.name, password_hash, sorted(user.roles), now,
            )
        except asyncpg.UniqueViolationError:
            raise EmailTaken(user.email) from None

    async def user(self, user_id: str) -> User | None:
        row = await self.connection.fetchrow(
            "SELECT id, email, name, roles FROM users WHERE id = $1", uuid.UUID(user_id)
        )
        return _user(row) if row else None

    async def credentials(self, email: str) -> tuple[User, str] | None:
        row = await self.connection.fetchrow(
            "SELECT id, email, name, roles, password_hash FROM users WHERE email = $1", email
        )
        return (_user(row), row["password_hash"]) if row else None

    async def first_admin(self) -> User | None:
        row = await self.connection.fetchrow(
            "SELECT id, email, name, roles FROM users WHERE 'admin' = ANY(roles) ORDER BY created_at, id LIMIT 1"
        )
        return _user(row) if row else None

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self.connection.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", uuid.UUID(user_id), password_hash
        )

    async def grant_role(self, user_id: str, role: str) -> User:
        row = await self.connection.fetchrow(
            """UPDATE users SET roles = ARRAY(SELECT DISTINCT unnest(roles || $2::text) ORDER BY 1)
               WHERE id = $1 RETURNING id, email, name, roles""",
            uuid.UUID(user_id), role,
        )
        return _user(row)

    # ------------------------------------------------------------ refresh tokens

    async def start_family(self, family_id: str, user_id: str, now: datetime) -> None:
        await self.connection.execute(
            "INSERT INTO refresh_families (id, user_id, created_at) VALUES ($1, $2, $3)",
            uuid.UUID(family_id), uuid.UUID(user_id), now,
        )

    async def add_refresh_token(self, digest: bytes, family_id: str, now: datetime, expires_at: datetime) -> None:
        await self.connection.execute(
            "INSERT INTO refresh_tokens (digest, family_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
            digest, uuid.UUID(family_id), now, expires_at,
        )

    async def refresh_token_for_update(self, digest: bytes) -> StoredRefreshToken | None:
        """Locked until the transaction ends, so two uses of one token are judged one after the other."""
        row = await self.connection.fetchrow(
            """SELECT u.id, u.email, u.name, u.roles, t.family_id, t.expires_at,
                      t.used_at IS NOT NULL AS used, f.revoked_at IS NOT NULL AS family_revoked
               FROM refresh_tokens t
               JOIN refresh_families f ON f.id = t.family_id
               JOIN users u ON u.id = f.user_id
               WHERE t.digest = $1 FOR UPDATE OF t""",
            digest,
        )
        if row is None:
            return None
        return StoredRefreshToken(
            user=_user(row), family_id=str(row["family_id"]), expires_at=row["expires_at"],
            used=row["used"], family_revoked=row["family_revoked"],
        )

    async def mark_used(self, digest: bytes, now: datetime) -> None:
        await self.connection.execute("UPDATE refresh_tokens SET used_at = $2 WHERE digest = $1", digest, now)

    async def revoke_family(self, family_id: str, now: datetime) -> None:
        await self.connection.execute(
            "UPDATE refresh_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            uuid.UUID(family_id), now,
        )

    async def revoke_families_of_user(self, user_id: str, now: datetime) -> None:
        await self.connection.execute(
            "UPDATE refresh_families SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            uuid.UUID(user_id), now,
        )

    async def revoke_family_of(self, digest: bytes, now: datetime) -> None:
        await self.connection.execute(
            """UPDATE refresh_families SET revoked_at = $2
               WHERE id = (SELECT family_id FROM refresh_tokens WHERE digest = $1) AND revoked_at IS NULL""",
            digest, now,
        )

    async def forget_expired_families(self, now: datetime) -> int:
        """Deletes sessions whose every refresh token has expired (their tokens go with them):
        such a token is refused for its age, so its rotation history proves nothing any more."""
        deleted = await self.connection.execute(
            """DELETE FROM refresh_families family
               WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens token
                                  WHERE token.family_id = family.id AND token.expires_at > $1)""",
            now,
        )
        return int(deleted.split()[-1])

    async def forget_expired_used_tokens(self, now: datetime) -> None:
        """Deletes the rotated tokens of live sessions once they have expired. A session that
        keeps refreshing never expires, and without this it would keep a row for every refresh
        it ever made. A replay of such a token now finds nothing (401) rather than revoking the
        session: a token that old could not have refreshed anyway."""
        await self.connection.execute("DELETE FROM refresh_tokens WHERE used_at IS NOT NULL AND expires_at <= $1", now)

    # ------------------------------------------------------------ signing keys

    async def lock_signing_keys(self) -> None:
        await self.connection.execute("SELECT pg_advisory_xact_lock($1)", _SIGNING_KEY_LOCK)

    async def active_signing_key(self) -> tuple[str, bytes] | None:
        row = await self.connection.fetchrow(
            """SELECT kid, sealed_private_key FROM signing_keys WHERE retire_at IS NULL
               ORDER BY created_at DESC LIMIT 1"""
        )
        return (row["kid"], row["sealed_private_key"]) if row else None

    async def add_signing_key(self, kid: str, public_jwk: dict[str, Any], sealed: bytes, now: datetime) -> None:
        await self.connection.execute(
            "INSERT INTO signing_keys (kid, public_jwk, sealed_private_key, created_at) VALUES ($1, $2, $3, $4)",
            kid, json.dumps(public_jwk), sealed, now,
        )

    async def retire_signing_keys(self, retire_at: datetime) -> None:
        """Every key that signs today: it stops signing now and leaves the JWKS at `retire_at`."""
        await self.connection.execute("UPDATE signing_keys SET retire_at = $1 WHERE retire_at IS NULL", retire_at)

    async def forget_retired_signing_keys(self, now: datetime) -> None:
        await self.connection.execute("DELETE FROM signing_keys WHERE retire_at <= $1", now)

    async def published_keys(self, now: datetime) -> list[dict[str, Any]]:
        rows = await self.connection.fetch(
            "SELECT public_jwk FROM signing_keys WHERE retire_at IS NULL OR retire_at > $1 ORDER BY created_at DESC",
            now,
        )
        return [json.loads(row["public_jwk"]) for row in rows]


class Database:
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repository]:
        async with self._pool.acquire() as connection, connection.transaction():
            yield Repository(connection)
