import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from contract_helpers import EVENTS

SCHEMA_FILES = sorted(EVENTS.rglob("*.json"))
PRODUCERS = {"identity", "catalog", "orders", "inventory", "payments", "shipping"}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_every_event_the_saga_needs_has_a_schema() -> None:
    names = {f"{p.parent.name}/{p.name}" for p in SCHEMA_FILES}
    for needed in [
        "identity/UserRegistered",
        "orders/OrderPlaced",
        "orders/OrderConfirmed",
        "orders/OrderCancelled",
        "inventory/StockReserved",
        "inventory/StockRejected",
        "payments/PaymentAuthorized",
        "payments/PaymentDeclined",
        "payments/PaymentRefunded",
        "shipping/ShipmentDispatched",
    ]:
        assert f"{needed}.v1.json" in names


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_schema_is_valid_draft_2020_12_named_after_its_file(path: Path) -> None:
    schema = _load(path)
    jsonschema.Draft202012Validator.check_schema(schema)
    event, version = path.name.removesuffix(".json").split(".v")
    assert path.parent.name in PRODUCERS
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:agora:events:{path.parent.name}:{event}:v{version}"
    assert schema["title"] == event
    assert schema["type"] == "object" and schema["required"]


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_schema_example_validates(path: Path) -> None:
    schema = _load(path)
    assert len(schema["examples"]) == 1
    _validator(schema).validate(schema["examples"][0])


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_schema_rejects_the_example_without_a_required_field(path: Path) -> None:
    schema = _load(path)
    for field in schema["required"]:
        broken = copy.deepcopy(schema["examples"][0])
        del broken[field]
        assert not _validator(schema).is_valid(broken), field


@pytest.mark.parametrize(
    "bad",
    [
        {"amount": -1, "currency": "USD"},
        {"amount": 1.5, "currency": "USD"},
        {"amount": "100", "currency": "USD"},
        {"amount": 100, "currency": "usd"},
        {"amount": 100},
    ],
)
def test_money_must_be_a_non_negative_integer_with_an_upper_case_currency(bad: dict[str, Any]) -> None:
    schema = _load(EVENTS / "payments" / "PaymentCaptured.v1.json")
    event = {**schema["examples"][0], "amount": bad}
    assert not _validator(schema).is_valid(event)


def test_order_cancelled_reason_is_one_of_the_three() -> None:
    schema = _load(EVENTS / "orders" / "OrderCancelled.v1.json")
    event = {**schema["examples"][0], "reason": "changed_my_mind"}
    assert not _validator(schema).is_valid(event)


def test_order_placed_carries_what_payments_and_shipping_need() -> None:
    required = set(_load(EVENTS / "orders" / "OrderPlaced.v1.json")["required"])
    assert {"payment_token", "total", "items", "shipping_address", "user_id"} <= required
