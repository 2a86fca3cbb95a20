"""Events are CloudEvents checked against their schema on the way out and on the way in."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from chassis.messaging import Envelope, MalformedEvent, add_to_outbox
from tests.chassis.messaging.support import THING_MADE, THINGS
from tests.e2e import malformed


def test_a_new_event_is_a_valid_cloudevent_that_parses_back_to_itself() -> None:
    event = Envelope.new("things", "ThingMade", {"thing_id": "t1", "amount": 3}, subject="t1")
    raw = json.loads(event.to_json())
    assert raw["specversion"] == "1.0" and raw["type"] == THING_MADE and raw["source"] == "agora/things"
    assert str(uuid.UUID(raw["id"])) == raw["id"]
    assert raw["time"].endswith("Z") and raw["subject"] == "t1"
    assert raw["dataschema"] == "events/things/ThingMade.v1.json"
    assert raw["datacontenttype"] == "application/json"
    assert Envelope.parse(event.to_json()) == event
    assert (event.producer, event.name, event.version) == ("things", "ThingMade", 1)


def test_an_event_without_a_schema_cannot_be_built() -> None:
    with pytest.raises(MalformedEvent, match=r"no schema for agora\.things\.ThingLost\.v1"):
        Envelope.new("things", "ThingLost", {"thing_id": "t1"})


def test_an_event_whose_data_breaks_its_schema_cannot_be_built() -> None:
    with pytest.raises(MalformedEvent, match="amount"):
        Envelope.new("things", "ThingMade", {"thing_id": "t1", "amount": "three"})


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[]", "not a CloudEvents 1.0 envelope"),
        (b'{"specversion": "0.3"}', "not a CloudEvents 1.0 envelope"),
        (
            b'{"specversion": "1.0", "id": "x", "type": "agora.things.ThingMade.v1", "source": "s", "time": "t",'
            b' "data": {}}',
            "UUID",
        ),
        (
            b'{"specversion": "1.0", "id": "4b1c2a52-52a4-4b5e-9a51-8e7d0b6a2f10", "type": "ThingMade",'
            b' "source": "s", "time": "t", "data": {}}',
            "not an Agora event type",
        ),
        (
            b'{"specversion": "1.0", "id": "4b1c2a52-52a4-4b5e-9a51-8e7d0b6a2f10",'
            b' "type": "agora.things.ThingMade.v1", "source": "s", "time": "t", "data": "x"}',
            "not an object",
        ),
        (b"[" * 100_000, "nested too deeply"),  # a RecursionError inside json, not a ValueError
        (
            b'{"specversion": "1.0", "id": "4b1c2a52-52a4-4b5e-9a51-8e7d0b6a2f10",'
            b' "type": "agora.things.ThingMade.v1\\n", "source": "s", "time": "t", "data": {}}',
            "not an Agora event type",  # a trailing newline once slipped past `$` and was acked unread
        ),
        (
            b'{"specversion": "1.0", "id": "4b1c2a52-52a4-4b5e-9a51-8e7d0b6a2f10",'
            b' "type": "agora.things.T' + b"h" * 300 + b'.v1", "source": "s", "time": "t", "data": {}}',
            "no schema",  # too long for a file name: an OSError, not a FileNotFoundError
        ),
    ],
)
def test_anything_but_a_valid_event_is_refused_with_its_reason(body: bytes, problem: str) -> None:
    with pytest.raises(MalformedEvent, match=problem):
        Envelope.parse(body)


async def test_the_outbox_refuses_an_event_outside_a_transaction(pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="transaction"):
            await THINGS.add(conn, "ThingMade", {"thing_id": "t", "amount": 1})
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_schema_violation_fails_the_producers_transaction(pool) -> None:
    with pytest.raises(MalformedEvent):
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO effects VALUES ($1, 1)", str(uuid.uuid4()))
            await THINGS.add(conn, "ThingMade", {"thing_id": "", "amount": 1})
    assert await pool.fetchval("SELECT count(*) FROM effects") == 0


async def test_the_outbox_keeps_the_envelope_and_its_trace_headers(pool) -> None:
    event = Envelope.new("things", "ThingMade", {"thing_id": "t", "amount": 1})
    event = Envelope(**{**event.__dict__, "trace": {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}})
    async with pool.acquire() as conn, conn.transaction():
        await add_to_outbox(conn, event)
    row = await pool.fetchrow("SELECT event_id, event_type, envelope, headers FROM outbox")
    assert str(row["event_id"]) == event.id and row["event_type"] == THING_MADE
    assert Envelope.parse(row["envelope"].encode()) == event
    assert json.loads(row["headers"]) == event.trace


def test_data_its_schema_refuses_is_refused_for_every_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast validator must never accept what `jsonschema` refuses: the e2e fuzzer's data
    mutations of each contract's example (wrong types, missing fields, huge strings, ...)."""
    monkeypatch.delenv("AGORA_CONTRACTS_DIR")
    types = sorted({event_type for _, event_type in malformed.pairs()})
    assert len(types) > 10
    for event_type in types:
        for message in malformed.generate(malformed.bad_data(event_type), 40, key=f"envelope {event_type}"):
            with pytest.raises(MalformedEvent, match=f"{event_type} data at "):
                Envelope.parse(message.body)


def test_the_verdict_is_jsonschemas_where_the_fast_validator_is_stricter(event_schemas: Path) -> None:
    """jsonschema-rs' `$` refuses a trailing newline, Python's regexes allow one; jsonschema-rs
    checks `format: email` by RFC 5322, jsonschema only looks for an `@`. jsonschema decides."""
    schema = {
        "type": "object",
        "required": ["currency", "email"],
        "properties": {"currency": {"type": "string", "pattern": "^[A-Z]{3}$"}, "email": {"format": "email"}},
    }
    (event_schemas / "things" / "ThingPriced.v1.json").write_text(json.dumps(schema))
    event = Envelope.new("things", "ThingPriced", {"currency": "USD\n", "email": "a@b@c"})
    assert Envelope.parse(event.to_json()) == event
    with pytest.raises(MalformedEvent, match="'USDX' does not match"):
        Envelope.new("things", "ThingPriced", {"currency": "USDX", "email": "a@b"})
    with pytest.raises(MalformedEvent, match="is not a 'email'"):
        Envelope.new("things", "ThingPriced", {"currency": "USD", "email": "no at sign"})
