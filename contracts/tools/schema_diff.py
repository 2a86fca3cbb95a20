"""Finds the breaking changes between two versions of Agora's event schemas.

An event schema describes what a producer emits and every consumer reads, including events
already stored in the stream and replayed later. So a change is breaking when an event valid
before may now be invalid, or a consumer may now miss something it relied on: a removed schema
file or property, a property made required or no longer required, a changed type, an enum that
lost a value. Adding an optional property, an enum value or a new schema file is additive.

    python contracts/tools/schema_diff.py OLD_EVENTS_DIR NEW_EVENTS_DIR

prints one line per breaking change and exits 1 when there is any.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Schema = dict[str, Any]


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """The breaking changes from `old` to `new`, one sentence each naming where."""
    return list(_compare(old, new, old, new, "data"))


def breaking_changes_between_dirs(old_dir: Path, new_dir: Path) -> list[str]:
    """Compares every `<producer>/<Event>.v<N>.json` in old_dir with its namesake in new_dir."""
    changes = []
    for old_path in sorted(old_dir.rglob("*.json")):
        relative = old_path.relative_to(old_dir)
        new_path = new_dir / relative
        if not new_path.exists():
            changes.append(f"{relative}: schema removed")
            continue
        old, new = json.loads(old_path.read_text()), json.loads(new_path.read_text())
        changes.extend(f"{relative}: {change}" for change in breaking_changes(old, new))
    return changes


def enum_narrowed(old: Schema, new: Schema, where: str) -> Iterator[str]:
    """A value valid before that the new enum refuses."""
    if "enum" in new:
        lost = [value for value in old.get("enum", []) if value not in new["enum"]]
        if "enum" not in old:
            yield f"{where}: values restricted to an enum"
        elif lost:
            yield f"{where}: enum lost {lost}"


def _compare(old: Schema, new: Schema, old_root: Schema, new_root: Schema, where: str) -> Iterator[str]:
    old, new = resolve_ref(old, old_root), resolve_ref(new, new_root)

    if declared_types(old) != declared_types(new):
        yield f"{where}: type changed from {declared_types(old) or 'any'} to {declared_types(new) or 'any'}"
        return

    yield from enum_narrowed(old, new, where)

    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name in sorted(new_required - old_required):
        yield f"{where}.{name}: became required"
    for name in sorted(old_required - new_required):
        yield f"{where}.{name}: no longer required"

    old_properties, new_properties = old.get("properties", {}), new.get("properties", {})
    for name, old_property in old_properties.items():
        if name not in new_properties:
            yield f"{where}.{name}: property removed"
        else:
            yield from _compare(old_property, new_properties[name], old_root, new_root, f"{where}.{name}")

    if isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
        yield from _compare(old["items"], new["items"], old_root, new_root, f"{where}[]")


def resolve_ref(schema: Schema, root: Schema) -> Schema:
    """Follows a local `$ref` (`#/$defs/money`); siblings of the `$ref` (a description) are kept."""
    while "$ref" in schema:
        pointer = schema["$ref"]
        if not pointer.startswith("#/"):
            raise ValueError(f"only local $ref is supported, not {pointer!r}")
        target = root
        for part in pointer[2:].split("/"):
            target = target[part]
        schema = {**{k: v for k, v in schema.items() if k != "$ref"}, **target}
    return schema


def declared_types(schema: Schema) -> list[str]:
    declared = schema.get("type", [])
    return sorted([declared] if isinstance(declared, str) else declared)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    changes = breaking_changes_between_dirs(Path(argv[1]), Path(argv[2]))
    for change in changes:
        print(f"breaking: {change}")
    return 1 if changes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
