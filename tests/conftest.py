"""Fixtures shared by every test: throwaway databases and unique names on the machine's servers."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

ADMIN_DSN = os.environ.get("AGORA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("AGORA_TEST_NATS", "nats://127.0.0.1:4222")
RABBITMQ_URL = os.environ.get("AGORA_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("AGORA_TEST_REDIS", "redis://127.0.0.1:6379/0")


def unique_city() -> str:
    """A city id no other test or running city uses: prefixes databases, streams and keys."""
    return "t" + secrets.token_hex(5)


@pytest.fixture
async def fresh_database() -> AsyncIterator[str]:
    """A new empty database on the machine's Postgres; its DSN. Dropped afterwards."""
    name = unique_city()
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
