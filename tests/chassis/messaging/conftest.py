"""Real Postgres and NATS for every delivery test: a fresh database, a fresh city (so fresh
streams), test-only event schemas."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from chassis import db
from chassis.messaging import MIGRATIONS, NatsBus
from tests.chassis.messaging.support import OwnNats
from tests.conftest import NATS_URL, unique_city

THING_MADE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["thing_id", "amount"],
    "properties": {"thing_id": {"type": "string", "minLength": 1}, "amount": {"type": "integer", "minimum": 0}},
    "additionalProperties": False,
}


@pytest.fixture(autouse=True)
def event_schemas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "events"
    (directory / "things").mkdir(parents=True)
    (directory / "things" / "ThingMade.v1.json").write_text(json.dumps(THING_MADE_SCHEMA))
    monkeypatch.setenv("AGORA_CONTRACTS_DIR", str(directory))
    return directory


@pytest.fixture
async def dsn(fresh_database: str) -> str:
    pool = await db.connect(fresh_database, min_size=1, max_size=1)
    try:
        await db.migrate(pool, {"messaging": MIGRATIONS})
        await pool.execute("CREATE TABLE effects (event_id uuid NOT NULL, amount int NOT NULL)")
    finally:
        await pool.close()
    return fresh_database


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.connect(dsn, min_size=2, max_size=20)
    yield pool
    await pool.close()


@pytest.fixture
def city() -> str:
    return unique_city()


@pytest.fixture
async def bus(city: str) -> AsyncIterator[NatsBus]:
    bus = NatsBus(NATS_URL, city, ack_wait_seconds=2, pull_expires_seconds=1)
    await bus.connect()
    yield bus
    await bus.delete_streams()
    await bus.close()


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[OwnNats]:
    server = OwnNats(tmp_path / "jetstream")
    server.start()
    yield server
    server.stop()
