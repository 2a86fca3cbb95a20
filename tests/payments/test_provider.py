"""The payment provider fake's own model, and the adapter that translates it into ours."""

from __future__ import annotations

import json
import time

import pytest

from payments.bootstrap import PaymentsSettings
from payments.domain import ChargeState, Money, Status
from payments.provider import Authorized, Declined, ProviderRefused, to_major_units, to_minor_units
from payments.provider_fake import CHARGES_OF_ORDER, PaymentProviderFake, ProviderError
from tests.payments.conftest import Payments, new_order_id


async def test_a_request_repeated_with_its_idempotency_key_gets_the_first_answer(payments: Payments) -> None:
    request = {
        "amount": "12.50",
        "currency": "usd",
        "source": "tok_visa",
        "capture": False,
        "metadata": {"order_id": "o-1"},
        "idempotency_key": "o-1:authorize",
    }
    first = await payments.fake.create_charge(**request)
    again = await payments.fake.create_charge(**request)

    assert again == first
    assert (first["id"][:3], first["status"], first["amount"], first["amount_captured"]) == (
        "ch_",
        "requires_capture",
        "12.50",
        "0",
    )
    assert await payments.pool.fetchval("SELECT count(*) FROM provider_charges") == 1


async def test_a_declined_answer_is_replayed_too_without_a_second_attempt(payments: Payments) -> None:
    request = {"amount": "5.00", "currency": "usd", "source": "tok_insufficientFunds", "idempotency_key": "k"}
    with pytest.raises(ProviderError) as first:
        await payments.fake.create_charge(**request)
    with pytest.raises(ProviderError) as again:
        await payments.fake.create_charge(**request)

    assert first.value.http_status == again.value.http_status == 402
    assert first.value.error == again.value.error
    assert (first.value.code, first.value.error["decline_code"]) == ("card_declined", "insufficient_funds")
    assert await payments.pool.fetchval("SELECT count(*) FROM provider_charges") == 1


async def test_an_idempotency_key_is_refused_with_other_parameters(payments: Payments) -> None:
    await payments.fake.create_charge(amount="5.00", currency="usd", source="tok_visa", idempotency_key="k")
    with pytest.raises(ProviderError) as refused:
        await payments.fake.create_charge(amount="6.00", currency="usd", source="tok_visa", idempotency_key="k")
    assert (refused.value.http_status, refused.value.error["type"]) == (400, "idempotency_error")


async def test_the_provider_refuses_what_its_charges_do_not_allow(payments: Payments) -> None:
    charge = await payments.fake.create_charge(
        amount="5.00", currency="usd", source="tok_visa", capture=False, idempotency_key="a"
    )
    with pytest.raises(ProviderError) as uncaptured:
        await payments.fake.create_refund(charge=charge["id"], idempotency_key="r1")
    await payments.fake.cancel_charge(charge["id"], idempotency_key="c")
    with pytest.raises(ProviderError) as canceled:
        await payments.fake.capture_charge(charge["id"], idempotency_key="p")
    captured = await payments.fake.create_charge(amount="5.00", currency="usd", source="tok_visa", idempotency_key="b")
    with pytest.raises(ProviderError) as too_much:
        await payments.fake.create_refund(charge=captured["id"], amount="5.01", idempotency_key="r2")

    assert uncaptured.value.code == canceled.value.code == "charge_unexpected_state"
    assert too_much.value.code == "amount_too_large"
    assert (await payments.fake.retrieve_charge(charge["id"]))["status"] == "canceled"


async def test_every_provider_call_takes_the_configured_latency(payments: Payments) -> None:
    slow = PaymentProviderFake(payments.pool, latency_ms=60)
    started = time.perf_counter()
    await slow.list_charges(metadata={"order_id": "none"})
    assert time.perf_counter() - started >= 0.06


def test_the_latency_is_read_from_payments_provider_latency_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_SERVICE", "payments")
    monkeypatch.setenv("AGORA_HTTP_PORT", "1")
    assert PaymentsSettings().provider_latency_ms == 5.0
    monkeypatch.setenv("PAYMENTS_PROVIDER_LATENCY_MS", "12.5")
    assert PaymentsSettings().provider_latency_ms == 12.5


@pytest.mark.parametrize(
    ("money", "major"),
    [
        (Money(4499, "USD"), "44.99"),
        (Money(5, "EUR"), "0.05"),
        (Money(500, "JPY"), "500"),
        (Money(1234, "KWD"), "1.234"),
    ],
)
def test_minor_units_translate_to_the_providers_major_unit_strings_and_back(money: Money, major: str) -> None:
    assert to_major_units(money) == major
    assert to_minor_units(major, money.currency.lower()) == money.amount


def test_an_amount_finer_than_the_currency_allows_is_refused() -> None:
    with pytest.raises(ProviderRefused):
        to_minor_units("1.005", "usd")


async def test_the_adapter_speaks_our_model(payments: Payments) -> None:
    order_id = new_order_id()
    result = await payments.provider.authorize(order_id, Money(1999, "USD"), "tok_mastercard")
    assert isinstance(result, Authorized) and result.charge_id.startswith("ch_")
    assert await payments.provider.charge_of(order_id) == ChargeState(result.charge_id, Status.AUTHORIZED)

    await payments.provider.capture(order_id, result.charge_id, Money(1999, "USD"))
    assert await payments.provider.charge_of(order_id) == ChargeState(result.charge_id, Status.CAPTURED)
    await payments.provider.refund(order_id, result.charge_id, Money(1999, "USD"))
    assert await payments.provider.charge_of(order_id) == ChargeState(result.charge_id, Status.REFUNDED)
    assert await payments.provider.charge_of(new_order_id()) is None
    assert await payments.provider.authorize(new_order_id(), Money(1, "USD"), "tok_nope") == Declined("invalid_token")


async def test_the_adapter_refuses_to_capture_a_voided_authorization(payments: Payments) -> None:
    order_id = new_order_id()
    result = await payments.provider.authorize(order_id, Money(100, "USD"), "tok_visa")
    assert isinstance(result, Authorized)
    await payments.provider.void(order_id, result.charge_id)
    with pytest.raises(ProviderRefused):
        await payments.provider.capture(order_id, result.charge_id, Money(100, "USD"))


async def test_listing_an_orders_charges_stays_an_index_lookup_as_charges_pile_up(payments: Payments) -> None:
    await payments.pool.execute(
        "INSERT INTO provider_charges (id, amount, currency, status, metadata, created)"
        " SELECT 'ch_' || n, 1, 'usd', 'succeeded', jsonb_build_object('order_id', gen_random_uuid()::text), n"
        " FROM generate_series(1, 1000) AS n"
    )
    await payments.pool.execute("ANALYZE provider_charges")
    order_id = new_order_id()
    plan = await payments.pool.fetchval(f"EXPLAIN (FORMAT JSON) {CHARGES_OF_ORDER}", json.dumps({"order_id": order_id}), order_id)
    assert "provider_charges_order" in plan and "Seq Scan" not in plan


async def test_searching_charges_needs_the_key_the_provider_indexes(payments: Payments) -> None:
    with pytest.raises(ProviderError) as refused:
        await payments.fake.list_charges(metadata={"user_id": "ada"})
    assert refused.value.http_status == 400 and refused.value.error["code"] == "parameter_missing"

