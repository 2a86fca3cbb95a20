"""Events on the wire: CloudEvents 1.0 structured JSON, checked against `contracts/events`.

Every event is validated twice: when it is built (an event without a schema, or with data its
schema refuses, fails the producer's transaction) and when it is received by a consumer that
handles its type (anything malformed goes to dead letters instead of reaching a handler).

Validation runs on every handled event, so it takes the compiled validator of `jsonschema-rs`
(microseconds, where `jsonschema` takes up to a millisecond for an `OrderPlaced`). Only data it
refuses goes to `jsonschema`, which has the last word and explains what is wrong.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema_rs
from opentelemetry import propagate

import chassis
from chassis.messaging.bus import TRACE_HEADERS, parse_event_type

if TYPE_CHECKING:
    import jsonschema


class MalformedEvent(ValueError):
    """Not a valid event of a known type and version: retrying can never make it succeed."""


_REPOSITORY_EVENTS = Path(chassis.__file__).resolve().parents[2] / "contracts" / "events"


def contracts_dir() -> Path:
    """`AGORA_CONTRACTS_DIR`, else the repository's `contracts/events` (on every event: kept cheap)."""
    configured = os.environ.get("AGORA_CONTRACTS_DIR")
    return Path(configured) if configured else _REPOSITORY_EVENTS


def schema_path(event_type: str) -> str:
    """The schema's path relative to `contracts/`, as CloudEvents' `dataschema` names it."""
    producer, name, version = parse_event_type(event_type)
    return f"events/{producer}/{name}.v{version}.json"


@functools.cache
def _schema(directory: Path, event_type: str) -> dict[str, Any]:
    path = directory / schema_path(event_type).removeprefix("events/")
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MalformedEvent(f"no schema for {event_type} (looked for {path})") from None
    except OSError as error:  # e.g. a type whose name is too long to be a file name
        raise MalformedEvent(f"no schema for {event_type}: {error.strerror or error}") from None


@functools.cache
def _fast_validator(directory: Path, event_type: str) -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(_schema(directory, event_type), validate_formats=True)


@functools.cache
def _exact_validator(directory: Path, event_type: str) -> jsonschema.Draft202012Validator:
    import jsonschema  # only for refused data: importing it costs each service ~0.1 s at start

    return jsonschema.Draft202012Validator(_schema(directory, event_type), format_checker=jsonschema.FormatChecker())


def validate_data(event_type: str, data: Any) -> None:
    directory = contracts_dir()
    try:
        fast = _fast_validator(directory, event_type)
    except ValueError as error:
        raise MalformedEvent(str(error)) from None
    # The fast validator is at least as strict as `jsonschema` (its regexes' `$` refuses a
    # trailing newline that Python's allows, its emails follow RFC 5322 where `jsonschema` wants
    # an `@`): what it accepts is valid, what it refuses is decided by `jsonschema`, so the
    # verdict is always `jsonschema`'s, and so is the reason.
    if fast.is_valid(data):
        return
    from jsonschema.exceptions import best_match

    problem = best_match(_exact_validator(directory, event_type).iter_errors(data))
    if problem is not None:
        where = "/".join(str(part) for part in problem.absolute_path) or "(root)"
        raise MalformedEvent(f"{event_type} data at {where}: {problem.message}")


@dataclass(frozen=True)
class Envelope:
    """One CloudEvent. Build with `Envelope.new`, read with `Envelope.parse`."""

    id: str
    type: str
    source: str
    time: str
    data: dict[str, Any]
    subject: str | None = None
    trace: dict[str, str] = field(default_factory=dict)
    """W3C trace context (`traceparent`, `tracestate`) of the code that produced the event."""

    @classmethod
    def new(
        cls, producer: str, name: str, data: dict[str, Any], *, subject: str | None = None, version: int = 1
    ) -> Envelope:
        """A new event from `producer`, validated; it carries the current trace context."""
        event_type = f"agora.{producer}.{name}.v{version}"
        validate_data(event_type, data)
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return cls(
            id=str(uuid.uuid4()),
            type=event_type,
            source=f"agora/{producer}",
            time=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            data=data,
            subject=subject,
            trace={key: carrier[key] for key in TRACE_HEADERS if key in carrier},
        )

    @classmethod
    def parse(cls, body: bytes) -> Envelope:
        """Raises MalformedEvent for anything but a valid CloudEvent of a type with a schema."""
        try:
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise MalformedEvent(f"not JSON: {error}") from None
        except RecursionError:
            raise MalformedEvent("not JSON this parser reads: nested too deeply") from None
        if not isinstance(raw, dict) or raw.get("specversion") != "1.0":
            raise MalformedEvent("not a CloudEvents 1.0 envelope")
        for attribute in ("id", "type", "source", "time"):
            if not isinstance(raw.get(attribute), str):
                raise MalformedEvent(f"envelope attribute {attribute!r} missing or not a string")
        try:
            event_id = str(uuid.UUID(raw["id"]))
            parse_event_type(raw["type"])
        except ValueError as error:
            raise MalformedEvent(str(error) or "event id is not a UUID") from None
        data = raw.get("data")
        if not isinstance(data, dict):
            raise MalformedEvent("event data is not an object")
        validate_data(raw["type"], data)
        subject = raw.get("subject")
        return cls(
            id=event_id,
            type=raw["type"],
            source=raw["source"],
            time=raw["time"],
            data=data,
            subject=subject if isinstance(subject, str) else None,
            trace={key: raw[key] for key in TRACE_HEADERS if isinstance(raw.get(key), str)},
        )

    @property
    def producer(self) -> str:
        return parse_event_type(self.type)[0]

    @property
    def name(self) -> str:
        return parse_event_type(self.type)[1]

    @property
    def version(self) -> int:
        return parse_event_type(self.type)[2]

    def to_dict(self) -> dict[str, Any]:
        envelope: dict[str, Any] = {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": "application/json",
            "dataschema": schema_path(self.type),
        }
        if self.subject is not None:
            envelope["subject"] = self.subject
        envelope.update(self.trace)
        envelope["data"] = self.data
        return envelope

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()
