import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from contract_helpers import REPO, load_tool, run


@pytest.fixture(scope="module")
def schema_diff() -> ModuleType:
    return load_tool("schema_diff")


BASE: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["order_id", "total"],
    "properties": {
        "order_id": {"type": "string"},
        "total": {"$ref": "#/$defs/money"},
        "reason": {"type": "string", "enum": ["out_of_stock", "payment_declined"]},
        "lines": {"type": "array", "items": {"type": "object", "properties": {"quantity": {"type": "integer"}}}},
    },
    "$defs": {"money": {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "integer"}}}},
}


def _changed(path: list[str], value: Any) -> dict[str, Any]:
    schema = json.loads(json.dumps(BASE))
    target = schema
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return schema


BREAKING = {
    "removed property": _changed(["properties", "reason"], None),
    "newly required": _changed(["required"], ["order_id", "total", "reason"]),
    "no longer required": _changed(["required"], ["order_id"]),
    "changed type": _changed(["properties", "order_id"], {"type": "integer"}),
    "narrowed enum": _changed(["properties", "reason", "enum"], ["out_of_stock"]),
    "changed type behind a $ref": _changed(["$defs", "money", "properties", "amount"], {"type": "number"}),
    "changed type inside array items": _changed(
        ["properties", "lines", "items", "properties", "quantity"], {"type": "string"}
    ),
}

ADDITIVE = {
    "unchanged": BASE,
    "new optional property": _changed(["properties", "note"], {"type": "string"}),
    "widened enum": _changed(["properties", "reason", "enum"], ["out_of_stock", "payment_declined", "other"]),
    "new description": _changed(["properties", "order_id"], {"type": "string", "description": "The order."}),
}


@pytest.mark.parametrize("new", BREAKING.values(), ids=BREAKING.keys())
def test_breaking_change_is_flagged(schema_diff: ModuleType, new: dict[str, Any]) -> None:
    assert schema_diff.breaking_changes(BASE, new)


@pytest.mark.parametrize("new", ADDITIVE.values(), ids=ADDITIVE.keys())
def test_additive_change_passes(schema_diff: ModuleType, new: dict[str, Any]) -> None:
    assert schema_diff.breaking_changes(BASE, new) == []


def test_change_names_where_it_is(schema_diff: ModuleType) -> None:
    assert schema_diff.breaking_changes(BASE, BREAKING["changed type behind a $ref"]) == [
        "data.total.amount: type changed from ['integer'] to ['number']"
    ]


def _events_dir(root: Path, schemas: dict[str, dict[str, Any]]) -> Path:
    for name, schema in schemas.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema))
    return root


def _cli(old: Path, new: Path) -> tuple[int, str]:
    result = run(REPO / ".venv/bin/python", REPO / "contracts/tools/schema_diff.py", old, new)
    return result.returncode, result.stdout


def test_cli_fails_on_a_removed_schema_file(tmp_path: Path) -> None:
    old = _events_dir(tmp_path / "old", {"orders/A.v1.json": BASE, "orders/B.v1.json": BASE})
    new = _events_dir(tmp_path / "new", {"orders/A.v1.json": BASE})
    code, output = _cli(old, new)
    assert code == 1
    assert "orders/B.v1.json: schema removed" in output


def test_cli_fails_on_a_breaking_change_and_names_the_file(tmp_path: Path) -> None:
    old = _events_dir(tmp_path / "old", {"orders/A.v1.json": BASE})
    new = _events_dir(tmp_path / "new", {"orders/A.v1.json": BREAKING["removed property"]})
    code, output = _cli(old, new)
    assert code == 1
    assert "orders/A.v1.json: data.reason: property removed" in output


def test_cli_passes_a_new_schema_version_and_an_additive_change(tmp_path: Path) -> None:
    old = _events_dir(tmp_path / "old", {"orders/A.v1.json": BASE})
    new = _events_dir(
        tmp_path / "new",
        {"orders/A.v1.json": ADDITIVE["new optional property"], "orders/A.v2.json": BREAKING["removed property"]},
    )
    assert _cli(old, new) == (0, "")
