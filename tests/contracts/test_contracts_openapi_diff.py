import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from contract_helpers import EDGE_OPENAPI, REPO, load_tool, run


@pytest.fixture(scope="module")
def openapi_diff() -> ModuleType:
    return load_tool("openapi_diff")


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


BASE: dict[str, Any] = {
    "openapi": "3.1.0",
    "paths": {
        "/items": {
            "get": {
                "parameters": [
                    {"in": "query", "name": "q", "required": False, "schema": {"type": "string", "maxLength": 200}},
                    {"in": "query", "name": "page", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"in": "header", "name": "X-Trace", "required": False, "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "ok", "content": _json("ItemList")}},
            },
            "post": {
                "requestBody": {"required": True, "content": _json("NewItem")},
                "responses": {"201": {"description": "created", "content": _json("Item")},
                              "422": {"description": "invalid"}},
                "security": [{"bearer": []}],
            },
        },
        "/items/{item_id}": {
            "get": {
                "parameters": [{"in": "path", "name": "item_id", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "ok", "content": _json("Item")},
                              "404": {"description": "unknown"}},
            },
            "put": {
                "parameters": [{"in": "path", "name": "item_id", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": False, "content": _json("NewItem")},
                "responses": {"200": {"description": "ok", "content": _json("Item")}},
                "security": [{"bearer": []}],
            },
        },
    },
    "components": {
        "schemas": {
            "Item": {
                "type": "object",
                "required": ["id", "name", "status"],
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "status": {"type": "string", "enum": ["new", "sold"]},
                    "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                },
            },
            "ItemList": {
                "type": "object",
                "required": ["items"],
                "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}},
            },
            "NewItem": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "maxLength": 100},
                    "kind": {"type": "string", "enum": ["a", "b"]},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 99},
                    "note": {"anyOf": [{"type": "string", "maxLength": 200, "pattern": "^[^\\x00]*$"},
                                       {"type": "null"}]},
                },
            },
        },
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}

LIST, CREATE = ["paths", "/items", "get"], ["paths", "/items", "post"]
ONE, REPLACE = ["paths", "/items/{item_id}", "get"], ["paths", "/items/{item_id}", "put"]
ITEM, NEW_ITEM = ["components", "schemas", "Item"], ["components", "schemas", "NewItem"]
Q, PAGE, TRACE = [*LIST, "parameters", 0], [*LIST, "parameters", 1], [*LIST, "parameters", 2]
REMOVED = object()


def _changed(*edits: tuple[list[Any], Any]) -> dict[str, Any]:
    """BASE with each (path, value) set, or deleted when the value is REMOVED."""
    document = json.loads(json.dumps(BASE))
    for path, value in edits:
        target = document
        for key in path[:-1]:
            target = target[key]
        if value is REMOVED:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return document


def _appended(path: list[Any], value: Any) -> tuple[list[Any], Any]:
    document = _changed()
    target = document
    for key in path:
        target = target[key]
    return path, [*target, value]


# Each breaking case's additive counterpart sits on the same line of ADDITIVE, by name.
BREAKING = {
    "operation removed": _changed((ONE, REMOVED)),
    "parameter removed": _changed(([*LIST, "parameters"], BASE["paths"]["/items"]["get"]["parameters"][1:])),
    "parameter became required": _changed(([*PAGE, "required"], True)),
    "new required parameter": _changed(_appended([*LIST, "parameters"],
                                                 {"in": "query", "name": "sort", "required": True})),
    "parameter type changed": _changed(([*PAGE, "schema", "type"], "string")),
    "parameter maximum lowered": _changed(([*PAGE, "schema", "maximum"], 100)),
    "parameter minimum raised": _changed(([*PAGE, "schema", "minimum"], 2)),
    "parameter maxLength lowered": _changed(([*Q, "schema", "maxLength"], 20)),
    "parameter pattern added": _changed(([*Q, "schema", "pattern"], "^[a-z]*$")),
    "request body became required": _changed(([*REPLACE, "requestBody", "required"], True)),
    "request property became required": _changed(([*NEW_ITEM, "required"], ["name", "kind"])),
    "new required request property": _changed(([*NEW_ITEM, "properties", "color"], {"type": "string"}),
                                               ([*NEW_ITEM, "required"], ["name", "color"])),
    "request property removed": _changed(([*NEW_ITEM, "properties", "quantity"], REMOVED)),
    "request property type changed": _changed(([*NEW_ITEM, "properties", "quantity", "type"], "number")),
    "request enum lost a value": _changed(([*NEW_ITEM, "properties", "kind", "enum"], ["a"])),
    "request values restricted to an enum": _changed(([*NEW_ITEM, "properties", "name", "enum"], ["x", "y"])),
    "request maxLength lowered": _changed(([*NEW_ITEM, "properties", "name", "maxLength"], 50)),
    "request maximum lowered": _changed(([*NEW_ITEM, "properties", "quantity", "maximum"], 10)),
    "request bound added": _changed(([*NEW_ITEM, "properties", "kind", "minLength"], 2)),
    "optional request property narrowed": _changed(
        ([*NEW_ITEM, "properties", "note", "anyOf", 0, "maxLength"], 100)),
    "additional request properties refused": _changed(([*NEW_ITEM, "additionalProperties"], False)),
    "request media type dropped": _changed(([*CREATE, "requestBody", "content"],
                                            {"application/xml": {"schema": {"type": "string"}}})),
    "success status removed": _changed(([*CREATE, "responses", "201"], REMOVED)),
    "response property removed": _changed(([*ITEM, "properties", "name"], REMOVED),
                                          ([*ITEM, "required"], ["id", "status"])),
    "response property no longer required": _changed(([*ITEM, "required"], ["id", "status"])),
    "response property type changed": _changed(([*ITEM, "properties", "id", "type"], "integer")),
    "response property became nullable": _changed(
        ([*ITEM, "properties", "name"], {"anyOf": [{"type": "string"}, {"type": "null"}]})),
    "security added": _changed(([*LIST, "security"], [{"bearer": []}])),
    "required parameter added for every operation of a path": _changed(
        (["paths", "/items", "parameters"], [{"in": "query", "name": "tenant", "required": True}])),
    "required parameter added for every operation of a path, by reference": _changed(
        (["components", "parameters"], {
            "Tenant": {"in": "query", "name": "tenant", "required": True},
            "Trace": BASE["paths"]["/items"]["get"]["parameters"][2],
        }),
        (TRACE, {"$ref": "#/components/parameters/Trace"}),  # the operation's own, by reference too
        (["paths", "/items", "parameters"], [{"$ref": "#/components/parameters/Tenant"}])),
}

ADDITIVE = {
    "unchanged": BASE,
    "operation added": _changed((["paths", "/items/{item_id}", "delete"], {"responses": {"204": {}}})),
    "parameter became optional": _changed(([*PAGE, "required"], False)),
    "new optional parameter": _changed(_appended([*LIST, "parameters"],
                                                 {"in": "query", "name": "sort", "required": False})),
    "parameter described": _changed(([*PAGE, "description"], "The page, from 1.")),
    "header name in another case": _changed(([*TRACE, "name"], "x-trace")),
    "parameter maximum raised": _changed(([*PAGE, "schema", "maximum"], 10000)),
    "parameter minimum lowered": _changed(([*PAGE, "schema", "minimum"], 0)),
    "parameter maxLength raised": _changed(([*Q, "schema", "maxLength"], 400)),
    "request body became optional": _changed(([*CREATE, "requestBody", "required"], False)),
    "request property became optional": _changed(([*NEW_ITEM, "required"], [])),
    "new optional request property": _changed(([*NEW_ITEM, "properties", "color"], {"type": "string"})),
    "request property gained a default": _changed(([*NEW_ITEM, "properties", "quantity", "default"], 1)),
    "request enum widened": _changed(([*NEW_ITEM, "properties", "kind", "enum"], ["a", "b", "c"])),
    "request enum lifted": _changed(([*NEW_ITEM, "properties", "kind", "enum"], REMOVED)),
    "request maxLength raised": _changed(([*NEW_ITEM, "properties", "name", "maxLength"], 200)),
    "request maximum lifted": _changed(([*NEW_ITEM, "properties", "quantity", "maximum"], REMOVED)),
    "request bound removed": _changed(([*NEW_ITEM, "properties", "quantity", "minimum"], REMOVED)),
    "optional request property's pattern removed": _changed(
        ([*NEW_ITEM, "properties", "note", "anyOf", 0, "pattern"], REMOVED)),
    "request pattern changed, which is not judged": _changed(
        ([*NEW_ITEM, "properties", "note", "anyOf", 0, "pattern"], "^[^\\x01]*$")),
    "additional request properties allowed": _changed(([*NEW_ITEM, "additionalProperties"], True)),
    "request media type added": _changed(([*CREATE, "requestBody", "content", "application/xml"],
                                          {"schema": {"type": "string"}})),
    "error status removed": _changed(([*ONE, "responses", "404"], REMOVED)),
    "new response status": _changed(([*CREATE, "responses", "409"], {"description": "taken"})),
    "new response property": _changed(([*ITEM, "properties", "color"], {"type": "string"})),
    "response property became required": _changed(([*ITEM, "required"], ["id", "name", "status", "note"])),
    "response enum widened": _changed(([*ITEM, "properties", "status", "enum"], ["new", "sold", "lost"])),
    "response property described": _changed(([*ITEM, "properties", "id", "description"], "The item's id.")),
    "security removed": _changed(([*CREATE, "security"], REMOVED)),
    "optional security added": _changed(([*LIST, "security"], [{}, {"bearer": []}])),
    "optional parameter added for every operation of a path": _changed(
        (["paths", "/items", "parameters"], [{"in": "query", "name": "tenant", "required": False}])),
    "request property became nullable": _changed(([*NEW_ITEM, "properties", "quantity"], {
        "anyOf": [{"type": "integer", "minimum": 1, "maximum": 99}, {"type": "null"}]})),
}


@pytest.mark.parametrize("new", BREAKING.values(), ids=BREAKING.keys())
def test_breaking_change_is_flagged(openapi_diff: ModuleType, new: dict[str, Any]) -> None:
    assert openapi_diff.breaking_changes(BASE, new)


@pytest.mark.parametrize("new", ADDITIVE.values(), ids=ADDITIVE.keys())
def test_additive_change_passes(openapi_diff: ModuleType, new: dict[str, Any]) -> None:
    assert openapi_diff.breaking_changes(BASE, new) == []


def test_change_names_the_operation_and_where_in_it(openapi_diff: ModuleType) -> None:
    """A response schema shared through `$ref`s is reported wherever an operation answers it."""
    assert openapi_diff.breaking_changes(BASE, BREAKING["response property type changed"]) == [
        "GET /items: response 200.items[].id: type changed from ['string'] to ['integer']",
        "POST /items: response 201.id: type changed from ['string'] to ['integer']",
        "GET /items/{item_id}: response 200.id: type changed from ['string'] to ['integer']",
        "PUT /items/{item_id}: response 200.id: type changed from ['string'] to ['integer']",
    ]
    assert openapi_diff.breaking_changes(BASE, BREAKING["parameter maximum lowered"]) == [
        "GET /items: query parameter page: maximum lowered from 1000 to 100"
    ]
    assert openapi_diff.breaking_changes(BASE, BREAKING["security added"]) == [
        "GET /items: security requirement added: [{'bearer': []}]"
    ]


def test_a_recursive_schema_is_compared_once_per_level(openapi_diff: ModuleType) -> None:
    node = {"type": "object", "properties": {
        "name": {"type": "string"},
        "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
        "parent": {"anyOf": [{"$ref": "#/components/schemas/Node"}, {"type": "null"}]},
    }}
    old = _changed((["components", "schemas", "Node"], node), ([*ONE, "responses", "200", "content"], _json("Node")))
    new = json.loads(json.dumps(old))
    assert openapi_diff.breaking_changes(old, new) == []
    del new["components"]["schemas"]["Node"]["properties"]["name"]
    assert openapi_diff.breaking_changes(old, new) == ["GET /items/{item_id}: response 200.name: property removed"]


def test_a_narrowed_field_of_the_real_edge_is_flagged_where_clients_send_it(openapi_diff: ModuleType) -> None:
    edge = json.loads(EDGE_OPENAPI.read_text())
    narrowed = json.loads(EDGE_OPENAPI.read_text())
    narrowed["components"]["schemas"]["ShippingAddress"]["properties"]["city"]["maxLength"] = 100
    assert openapi_diff.breaking_changes(edge, edge) == []
    assert "POST /api/v1/orders: request body.shipping_address.city: maxLength lowered from 200 to 100" in (
        openapi_diff.breaking_changes(edge, narrowed))


def _cli(tmp_path: Path, old: dict[str, Any], new: dict[str, Any]) -> tuple[int, str]:
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    result = run(REPO / ".venv/bin/python", REPO / "contracts/tools/openapi_diff.py",
                 tmp_path / "old.json", tmp_path / "new.json")
    return result.returncode, result.stdout + result.stderr


def test_cli_prints_each_breaking_change_and_fails(tmp_path: Path) -> None:
    code, output = _cli(tmp_path, BASE, _changed((ONE, REMOVED), ([*CREATE, "responses", "201"], REMOVED)))
    assert code == 1
    assert output.splitlines() == [
        "breaking: POST /items: response 201: removed",
        "breaking: GET /items/{item_id}: operation removed",
    ]


def test_cli_passes_an_additive_change(tmp_path: Path) -> None:
    assert _cli(tmp_path, BASE, ADDITIVE["operation added"]) == (0, "")
