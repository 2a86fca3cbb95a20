"""Finds the breaking changes between two versions of the edge's OpenAPI document.

The edge's clients are written against the published API, so the edge may only grow: every
request that was valid must stay valid, and every answer must still hold what clients read in it.

Breaking, per operation (path and method):
  - the operation is removed;
  - a parameter is removed, becomes required, or is new and required;
  - the request body, or a property in it, becomes required; a request property is removed
    (clients still send it);
  - a request schema narrows: its type changes, an enum loses values or appears, a maximum,
    maxLength or maxItems falls (or appears), a minimum, minLength or minItems rises (or appears),
    a pattern appears, or extra properties stop being allowed. A changed pattern is not judged:
    whether one regular expression accepts all another does is no simple question;
  - a 2xx response status is removed, or a response stops offering a media type;
  - a response property is removed or stops being required, or its type changes;
  - a security requirement is added to an operation that had none.
New operations, optional parameters and properties, response codes and media types are additive.
`$ref`s are followed into the document's components.

    python contracts/tools/openapi_diff.py OLD.json NEW.json

prints one line per breaking change and exits 1 when there is any.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from schema_diff import Schema, declared_types, enum_narrowed, resolve_ref

Direction = Literal["request", "response"]

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# A request schema narrows when one of these falls (upper bounds) or rises (lower bounds).
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems")


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """The breaking changes from document `old` to `new`, one sentence each naming where."""
    changes = []
    for path, old_item in old.get("paths", {}).items():
        new_item = new.get("paths", {}).get(path, {})
        for method in _METHODS:
            if method not in old_item:
                continue
            operation = f"{method.upper()} {path}"
            if method not in new_item:
                changes.append(f"{operation}: operation removed")
                continue
            compared = _Operation(
                old, new, _with_path_parameters(old_item, method, old), _with_path_parameters(new_item, method, new)
            )
            changes.extend(f"{operation}: {change}" for change in compared.breaking_changes())
    return changes


def _with_path_parameters(item: Schema, method: str, root: Schema) -> Schema:
    """The operation with the parameters its path item declares for all of its operations
    (OpenAPI: an operation's own parameter of the same place and name overrides them)."""
    operation = item[method]
    own = _Operation.parameters_of(operation, root)
    shared = [parameter for key, parameter in _Operation.parameters_of(item, root).items() if key not in own]
    return {**operation, "parameters": [*shared, *own.values()]} if shared else operation


class _Operation:
    """One operation in both documents; the roots are kept to follow `$ref`s."""

    def __init__(self, old_root: Schema, new_root: Schema, old: Schema, new: Schema):
        self.old_root, self.new_root = old_root, new_root
        self.old, self.new = old, new

    def breaking_changes(self) -> Iterator[str]:
        yield from self._parameters()
        yield from self._request_body()
        yield from self._responses()
        yield from self._security()

    def _parameters(self) -> Iterator[str]:
        old, new = self.parameters_of(self.old, self.old_root), self.parameters_of(self.new, self.new_root)
        for key, new_parameter in new.items():
            if new_parameter.get("required") and not old.get(key, {}).get("required"):
                yield f"{_parameter_name(key)}: became required"
        for key, old_parameter in old.items():
            if key not in new:
                yield f"{_parameter_name(key)}: removed"
            else:
                yield from self._schemas(old_parameter.get("schema", {}), new[key].get("schema", {}),
                                         "request", _parameter_name(key))

    @staticmethod
    def parameters_of(operation: Schema, root: Schema) -> dict[tuple[str, str], Schema]:
        """Keyed by where and name; header names are case-insensitive (RFC 9110)."""
        parameters = [resolve_ref(parameter, root) for parameter in operation.get("parameters", [])]
        return {
            (p["in"], p["name"].lower() if p["in"] == "header" else p["name"]): p for p in parameters
        }

    def _request_body(self) -> Iterator[str]:
        old = resolve_ref(self.old.get("requestBody", {}), self.old_root)
        new = resolve_ref(self.new.get("requestBody", {}), self.new_root)
        if new.get("required") and not old.get("required"):
            yield "request body: became required"
        yield from self._contents(old.get("content", {}), new.get("content", {}), "request", "request body")

    def _responses(self) -> Iterator[str]:
        old, new = self.old.get("responses", {}), self.new.get("responses", {})
        for status, old_response in old.items():
            if status not in new:
                if status.startswith("2"):
                    yield f"response {status}: removed"
                continue
            old_response = resolve_ref(old_response, self.old_root)
            new_response = resolve_ref(new[status], self.new_root)
            yield from self._contents(old_response.get("content", {}), new_response.get("content", {}),
                                      "response", f"response {status}")

    def _contents(self, old: Schema, new: Schema, direction: Direction, where: str) -> Iterator[str]:
        """A request body or a response, per media type: clients send or ask for the one they know."""
        for media_type, old_content in old.items():
            if media_type not in new:
                yield f"{where}: {media_type} no longer offered"
            else:
                yield from self._schemas(old_content.get("schema", {}), new[media_type].get("schema", {}),
                                         direction, where)

    def _security(self) -> Iterator[str]:
        if _is_open(self.old, self.old_root) and not _is_open(self.new, self.new_root):
            yield f"security requirement added: {self.new.get('security', self.new_root.get('security'))}"

    def _schemas(self, old: Schema, new: Schema, direction: Direction, where: str) -> Iterator[str]:
        return _compare(old, new, self.old_root, self.new_root, direction, where, frozenset())


def _is_open(operation: Schema, root: Schema) -> bool:
    """No requirement, or an empty one among the alternatives: the operation needs no credentials."""
    requirements = operation.get("security", root.get("security", []))
    return not requirements or {} in requirements


def _parameter_name(key: tuple[str, str]) -> str:
    where, name = key
    return f"{where} parameter {name}"


def _compare(
    old: Schema,
    new: Schema,
    old_root: Schema,
    new_root: Schema,
    direction: Direction,
    where: str,
    comparing: frozenset[tuple[str, str]],
) -> Iterator[str]:
    """`direction` says who sends what the schema describes: a request must accept everything it
    accepted, a response must still hold everything it held. `comparing` holds the pairs of
    components already being compared further up, so a recursive schema (a tree) ends."""
    old_component, new_component = _component_of(old), _component_of(new)
    if old_component and new_component:
        if (old_component, new_component) in comparing:
            return
        comparing = comparing | {(old_component, new_component)}
    old, new = _normalized(old, old_root), _normalized(new, new_root)

    old_types, new_types = declared_types(old), declared_types(new)
    # A request may come to accept more types (a field made nullable); a response may not change
    # what its clients read.
    widened = direction == "request" and bool(old_types) and set(old_types) <= set(new_types or old_types)
    if old_types != new_types and not widened:
        yield f"{where}: type changed from {old_types or 'any'} to {new_types or 'any'}"
        return

    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    old_properties, new_properties = old.get("properties", {}), new.get("properties", {})
    if direction == "request":
        yield from _narrowed(old, new, where)
        for name in sorted(new_required - old_required):
            yield f"{where}.{name}: became required"
    else:
        for name in sorted(old_required - new_required):
            if name in new_properties:
                yield f"{where}.{name}: no longer required"

    for name, old_property in old_properties.items():
        if name not in new_properties:
            yield f"{where}.{name}: property removed"
        else:
            yield from _compare(old_property, new_properties[name], old_root, new_root, direction,
                                f"{where}.{name}", comparing)

    if isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
        yield from _compare(old["items"], new["items"], old_root, new_root, direction, f"{where}[]", comparing)


def _narrowed(old: Schema, new: Schema, where: str) -> Iterator[str]:
    """What a request schema now refuses that it accepted."""
    yield from enum_narrowed(old, new, where)
    for bound in _UPPER_BOUNDS:
        if bound in new and (bound not in old or new[bound] < old[bound]):
            yield f"{where}: {bound} lowered from {old.get(bound, 'none')} to {new[bound]}"
    for bound in _LOWER_BOUNDS:
        if bound in new and (bound not in old or new[bound] > old[bound]):
            yield f"{where}: {bound} raised from {old.get(bound, 'none')} to {new[bound]}"
    if "pattern" in new and "pattern" not in old:
        yield f"{where}: pattern {new['pattern']!r} added"
    if old.get("additionalProperties", True) is not False and new.get("additionalProperties") is False:
        yield f"{where}: additional properties no longer allowed"


def _component_of(schema: Schema) -> str | None:
    """The component a schema stands for, itself or as an optional (`anyOf` it and null)."""
    refs = [branch["$ref"] for branch in schema.get("anyOf", []) if "$ref" in branch]
    return schema.get("$ref") or (refs[0] if len(refs) == 1 else None)


def _normalized(schema: Schema, root: Schema) -> Schema:
    """`$ref`s followed, and a union (`anyOf`, `oneOf`) reduced to the types it allows. FastAPI
    writes an optional value as `anyOf` the value's schema and null: that one's bounds and
    properties are kept, so they are judged as if it were not optional."""
    schema = resolve_ref(schema, root)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if not branches:
        return schema
    branches = [resolve_ref(branch, root) for branch in branches]
    union = {key: value for key, value in schema.items() if key not in ("anyOf", "oneOf")}
    types = sorted({name for branch in branches for name in declared_types(branch)})
    not_null = [branch for branch in branches if declared_types(branch) != ["null"]]
    if len(not_null) == 1:
        return {**union, **not_null[0], "type": types}
    return {**union, "type": types}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    old, new = (json.loads(Path(path).read_text()) for path in argv[1:])
    changes = breaking_changes(old, new)
    for change in changes:
        print(f"breaking: {change}")
    return 1 if changes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
