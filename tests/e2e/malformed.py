"""Hypothesis strategies for events no consumer can ever apply, and where each one is consumed.

The pairs (consumer, event type) come from the same source as docs/events.md (scripts/event-map.py:
each service's `handlers.SUBSCRIPTIONS`), so a new subscription is fuzzed without touching this file.
Every generated message is malformed by construction: the envelope check or the event's JSON
Schema (contracts/events) refuses it, so it can only end in dead letters, never in a handler.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "contracts" / "events"


@dataclass(frozen=True)
class Malformed:
    kind: str
    """What is wrong with it, e.g. `data: below minimum at total/amount`."""
    body: bytes
    event_id: str | None = None


@cache
def subscriptions() -> dict[str, list[str]]:
    """Event type → the services that consume it, as the event map computes it."""
    spec = importlib.util.spec_from_file_location("event_map", ROOT / "scripts" / "event-map.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.consumed()


def pairs() -> list[tuple[str, str]]:
    """Every (consumer, event type) a running consumer subscribes to, sorted."""
    return sorted((service, event_type) for event_type, services in subscriptions().items() for service in services)


def producer(event_type: str) -> str:
    return event_type.split(".")[1]


def name(event_type: str) -> str:
    return event_type.split(".")[2]


def followers(of_producer: str) -> set[str]:
    """The consumers of a producer's stream: each of them reads every message published there."""
    return {service for event_type, services in subscriptions().items() if producer(event_type) == of_producer
            for service in services}


@cache
def schema(event_type: str) -> dict[str, Any]:
    _, producer_name, event_name, version = event_type.split(".")
    return json.loads((EVENTS / producer_name / f"{event_name}.{version}.json").read_text())


def violates(event_type: str, data: Any) -> bool:
    validator = jsonschema.Draft202012Validator(schema(event_type), format_checker=jsonschema.FormatChecker())
    return not validator.is_valid(data)


def envelope(event_type: str, data: Any, **overrides: Any) -> dict[str, Any]:
    """A well-formed CloudEvent around `data`, with a fresh id unless `overrides` say otherwise."""
    return {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": f"agora/{producer(event_type)}", "type": event_type,
        "time": "2026-01-01T00:00:00Z", "datacontenttype": "application/json", "subject": "fuzz", "data": data,
        **overrides,
    }


def encoded(kind: str, message: dict[str, Any]) -> Malformed:
    event_id = message.get("id")
    return Malformed(kind, json.dumps(message).encode(), event_id if isinstance(event_id, str) else None)


# Plain JSON values, for wrong types and garbage.
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=8)
huge_strings = st.integers(min_value=10_000, max_value=30_000).flatmap(
    lambda size: st.sampled_from("x\u00e9\u4e2d\U0001f600").map(lambda char: char * size))


def not_json() -> st.SearchStrategy[Malformed]:
    garbage = st.binary(min_size=1, max_size=300).filter(_unparseable)
    return garbage.map(lambda body: Malformed("not JSON", body))


def _unparseable(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return True
    return False


def not_an_object() -> st.SearchStrategy[Malformed]:
    top = scalars | st.lists(json_values, max_size=4)
    return top.map(lambda value: Malformed("JSON, not an object", json.dumps(value).encode()))


def broken_envelope(event_type: str) -> st.SearchStrategy[Malformed]:
    """The right type, but an attribute missing or of the wrong type, or a bad id."""
    attribute = st.sampled_from(["id", "type", "source", "time", "data"])
    not_a_string = st.none() | st.booleans() | st.integers() | st.lists(st.integers(), max_size=2)

    def missing(name: str) -> Malformed:
        message = envelope(event_type, example(event_type))
        del message[name]
        return encoded(f"envelope: no {name}", message)

    def wrong(name: str, value: Any) -> Malformed:
        if name == "data":
            value = value if value is not None else "data"  # `data` must be an object, anything else is wrong
        message = envelope(event_type, example(event_type))
        message[name] = value
        return encoded(f"envelope: {name} is {type(value).__name__}", message)

    # Unique, and never a UUID: "not-" has letters outside hex.
    bad_id = st.text(max_size=40).map(lambda text: encoded("envelope: id not a UUID", envelope(
        event_type, example(event_type), id=f"not-{uuid.uuid4().hex}-{text}")))
    return attribute.map(missing) | st.builds(wrong, attribute, not_a_string) | bad_id


def wrong_specversion(event_type: str) -> st.SearchStrategy[Malformed]:
    version = json_values.filter(lambda value: value != "1.0")
    return version.map(lambda value: encoded(f"specversion {value!r}", envelope(
        event_type, example(event_type), specversion=value)))


def unknown_type(event_type: str) -> st.SearchStrategy[Malformed]:
    """On the subscribed subject, a type nobody has a schema for (or not an Agora type at all)."""
    unknown_name = st.from_regex(r"\A[A-Z][a-z]{2,12}\Z").map(lambda text: f"Fuzz{text}")
    agora_type = st.one_of(
        unknown_name.map(lambda text: f"agora.{producer(event_type)}.{text}.v1"),
        st.integers(min_value=2, max_value=10**6).map(lambda version: f"{event_type.rsplit('.', 1)[0]}.v{version}"),
    )
    foreign = st.text(max_size=60)
    return (agora_type | foreign).filter(lambda text: not _has_schema(text)).map(lambda text: encoded(f"unknown type {text[:40]!r}", envelope(
        event_type, example(event_type), type=text)))


def _has_schema(event_type: str) -> bool:
    parts = event_type.split(".")
    return len(parts) == 4 and parts[0] == "agora" and (EVENTS / parts[1] / f"{parts[2]}.{parts[3]}.json").is_file()


def bad_data(event_type: str) -> st.SearchStrategy[Malformed]:
    """The event's own envelope around data its schema refuses: a mutation of its example."""
    return _mutated(event_type).filter(lambda mutated: violates(event_type, mutated[1])).map(
        lambda mutated: encoded(f"data: {mutated[0]}", envelope(event_type, mutated[1])))


def example(event_type: str) -> dict[str, Any]:
    return copy.deepcopy(schema(event_type)["examples"][0])


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].removeprefix("#/$defs/")]
    return node


def _places(value: Any, node: dict[str, Any], root: dict[str, Any], path: tuple[Any, ...] = ()) -> list[tuple]:
    """Every (path, sub-schema, required?) in an example, leaves and containers alike."""
    node = _resolve(node, root)
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            child_node = node.get("properties", {}).get(key, {})
            found.append(((*path, key), _resolve(child_node, root), key in node.get("required", [])))
            found += _places(child, child_node, root, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _places(child, node.get("items", {}), root, (*path, index))
    return found


_WRONG_FOR = {
    "string": st.integers() | st.booleans() | st.none() | st.lists(st.text(max_size=3), max_size=2),
    "integer": st.text(max_size=10) | st.floats(allow_nan=False, allow_infinity=False).filter(
        lambda number: not number.is_integer()),
    "object": st.lists(st.integers(), max_size=2) | st.text(max_size=5),
    "array": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2) | st.integers(),
}


@st.composite
def _mutated(draw: Callable[[st.SearchStrategy[Any]], Any], event_type: str) -> tuple[str, dict[str, Any]]:
    root = schema(event_type)
    data = example(event_type)
    path, node, required = draw(st.sampled_from(_places(data, root, root)))
    where = "/".join(str(part) for part in path)
    kinds = ["wrong type", "garbage beside a wrong type"]
    if required:
        kinds.append("missing required")
    if "minimum" in node:
        kinds.append("below minimum")
    if "enum" in node:
        kinds.append("unknown enum value")
    if node.get("type") == "integer" or "pattern" in node or "format" in node:
        kinds.append("huge string")
    if node.get("minLength"):
        kinds.append("empty string")
    kind = draw(st.sampled_from(kinds))
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    leaf = path[-1]
    if kind == "missing required":
        del parent[leaf]
    elif kind == "below minimum":
        parent[leaf] = draw(st.integers(max_value=node["minimum"] - 1, min_value=node["minimum"] - 10**12))
    elif kind == "unknown enum value":
        parent[leaf] = draw(st.text(min_size=1, max_size=30).filter(lambda text: text not in node["enum"]))
    elif kind == "huge string":
        parent[leaf] = draw(huge_strings)
    elif kind == "empty string":
        parent[leaf] = ""
    else:
        parent[leaf] = draw(_WRONG_FOR.get(node.get("type", ""), st.just({"not": "this"})))
        if kind == "garbage beside a wrong type":
            data.update(draw(st.dictionaries(st.text(min_size=1, max_size=10).map(lambda key: f"zz_{key}"),
                                              json_values, min_size=1, max_size=4)))
    return f"{kind} at {where}", data


def malformed_events(event_type: str) -> st.SearchStrategy[Malformed]:
    """Each kind of fault equally often (`one_of` would favour the first ones in a short run)."""
    kinds = [not_json(), not_an_object(), broken_envelope(event_type), wrong_specversion(event_type),
             unknown_type(event_type), bad_data(event_type), bad_data(event_type)]
    return st.sampled_from(kinds).flatmap(lambda kind: kind)


# Hand-picked ones a random search rarely finds; each once broke (or could break) the parser.
EDGE_CASES = [
    Malformed("JSON nested deeper than the parser's recursion limit", b"[" * 100_000),
    Malformed("an object nested deeper than the recursion limit", b'{"a":' * 50_000),
    Malformed("empty body", b""),
    Malformed("a lone UTF-16 surrogate", b'"\\ud800"'),
    Malformed("an integer past the digit limit", b"{" + b'"specversion": ' + b"9" * 5000 + b"}"),
]


def edge_cases(event_type: str) -> list[Malformed]:
    """Known nasty bodies, plus envelopes whose type trips the type parser."""
    base = event_type.rsplit(".", 2)[0]
    return [*EDGE_CASES, *(encoded(kind, envelope(event_type, example(event_type), type=text)) for kind, text in [
        ("a type name too long for a file name", f"{base}.F{'u' * 300}zz.v1"),
        ("a producer too long for a directory name", f"agora.{'p' * 300}.{name(event_type)}.v1"),
        ("the right type and a trailing newline", f"{event_type}\n"),
    ])]


def generate(strategy: st.SearchStrategy[Malformed], count: int, *, key: str) -> list[Malformed]:
    """`count` examples, the same ones on every run for the same `key` (a fixed seed), without shrinking."""
    found: list[Malformed] = []

    @seed(zlib.crc32(key.encode()))
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(message: Malformed) -> None:
        found.append(message)

    collect()
    return found
