"""One database and one role per service on the city's Postgres; safe to run on every start."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, urlsplit

import asyncpg

from agora_cli.errors import AgoraError

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


def database_name(city: str, service: str) -> str:
    return f"{city}_{service}"


async def provision(
    admin_url: str, city: str, service: str, password: str, *, socket_dir: Path | None = None
) -> str:
    """Creates (or brings back in line) role and database `<city>_<service>`; returns the
    service's DSN, which logs in as that role with `password`, over the server's Unix socket in
    `socket_dir` when there is one."""
    name = database_name(city, service)
    if not _IDENTIFIER.match(name):
        raise AgoraError(f"invalid database name {name!r}")
    try:
        admin = await asyncpg.connect(admin_url, timeout=10)
        try:
            await _role_and_database(admin, name, password)
        finally:
            await admin.close()
        database = await asyncpg.connect(_with_database(admin_url, name), timeout=10)
        try:
            # Nobody but the owner creates objects in the service's database.
            await database.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        finally:
            await database.close()
    except (OSError, asyncpg.PostgresError) as error:
        raise AgoraError(f"provisioning {name} failed: {error}") from None
    return _dsn(admin_url, name, password, socket_dir)


async def _role_and_database(admin: asyncpg.Connection, name: str, password: str) -> None:
    # A city's first start creates ten databases at once, and each CREATE DATABASE waits for its
    # WAL flush; without the wait they take a third of the time. Nothing is at risk: provisioning
    # runs again on every start, and a service's first own commit flushes the WAL before it.
    await admin.execute("SET synchronous_commit = off")
    # Passwords are generated hex, never user input; DDL takes no bind parameters.
    literal = "'" + password.replace("'", "''") + "'"
    if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name):
        await admin.execute(f'ALTER ROLE "{name}" LOGIN PASSWORD {literal}')
    else:
        await admin.execute(f'CREATE ROLE "{name}" LOGIN PASSWORD {literal}')
    if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
        try:
            await admin.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
        except asyncpg.DuplicateDatabaseError:
            pass
    await admin.execute(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{name}" FROM PUBLIC')
    await admin.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{name}" TO "{name}"')


def _with_database(url: str, database: str) -> str:
    return urlsplit(url)._replace(path=f"/{database}").geturl()


def _dsn(admin_url: str, name: str, password: str, socket_dir: Path | None) -> str:
    parts = urlsplit(admin_url)
    credentials = f"{quote(name)}:{quote(password)}"
    if socket_dir is not None:
        return f"postgresql://{credentials}@/{name}?host={quote(str(socket_dir))}&port={parts.port or 5432}"
    return f"postgresql://{credentials}@{parts.hostname or '127.0.0.1'}:{parts.port or 5432}/{name}"
