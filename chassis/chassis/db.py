"""Postgres: a connection pool per service and migrations the service applies to itself.

Migrations are numbered SQL files (`001_create_products.sql`) in one directory per namespace
(the service's own, plus chassis mechanisms such as the outbox). Each file runs once, in its
own transaction, recorded in `schema_migrations`. An advisory lock makes concurrent starts of
several replicas safe: one applies, the others wait and then find nothing to do.
"""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

from chassis.logs import get_logger

_MIGRATION_FILE = re.compile(r"^(\d+)_[a-z0-9_]+\.sql$")
_MIGRATION_LOCK = 0x6167_6F72_61  # "agora": any constant shared by every instance of a service

log = get_logger(__name__)


IDLE_CONNECTION_SECONDS = 60
"""A connection idle this long is closed: a Postgres backend costs megabytes, and eleven services
each holding the connections of their busiest moment add up on a laptop."""


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing beyond what asyncpg always does (roll back an open
    transaction, drop listener callbacks). Its default resets the session (`pg_advisory_unlock_all`,
    `CLOSE ALL`, `UNLISTEN *`, `RESET ALL`), a round trip on every release, that is on every
    transaction and every handled event. Agora's pooled connections keep no session state: no
    `SET` but `SET LOCAL`, no cursors or temporary tables, and the two holders of a session lock,
    `migrate` and the outbox relay, give it back or close the connection."""


async def connect(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, command_timeout=30,
        max_inactive_connection_lifetime=IDLE_CONNECTION_SECONDS, reset=_keep_session,
    )


async def unlock(conn: asyncpg.Connection, key: int) -> None:
    """Releases a session-level advisory lock taken on a pooled connection. The pool does not
    reset connections, so one that may still hold the lock is closed rather than given back."""
    try:
        await conn.execute("SELECT pg_advisory_unlock($1)", key)
    except BaseException:
        conn.terminate()
        raise


def _migration_files(directory: Path) -> list[tuple[int, Path]]:
    files = []
    for path in sorted(directory.iterdir()):
        match = _MIGRATION_FILE.match(path.name)
        if match:
            files.append((int(match.group(1)), path))
    versions = [version for version, _ in files]
    if len(versions) != len(set(versions)):
        raise ValueError(f"two migrations share a number in {directory}")
    return files


async def migrate(pool: asyncpg.Pool, directories: dict[str, Path]) -> list[str]:
    """Applies what is new in each namespace's directory; returns the names applied."""
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       namespace text NOT NULL,
                       version integer NOT NULL,
                       name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now(),
                       PRIMARY KEY (namespace, version))"""
            )
            for namespace, directory in directories.items():
                done = {
                    row["version"]
                    for row in await conn.fetch(
                        "SELECT version FROM schema_migrations WHERE namespace = $1", namespace
                    )
                }
                for version, path in _migration_files(directory):
                    if version in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(path.read_text())
                        await conn.execute(
                            "INSERT INTO schema_migrations (namespace, version, name) VALUES ($1, $2, $3)",
                            namespace, version, path.name,
                        )
                    log.info("migration_applied", namespace=namespace, migration=path.name)
                    applied.append(f"{namespace}/{path.name}")
        finally:
            await unlock(conn, _MIGRATION_LOCK)
    return applied
