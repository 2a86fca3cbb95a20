"""Payments reacting to the order's events: authorize, capture, void, refund, each exactly once."""

from __future__ import annotations

import asyncio

import pytest
import structlog

from payments.domain import ChargeState, Money, Status
from payments.handlers import OrderNotPlacedYet
from payments.provider import Authorized, Declined, PaymentProvider
from tests.payments.conftest import (
    Payments,
    new_order_id,
    order_cancelled,
    order_confirmed,
    order_placed,
)

USD = "USD"


class Crash(Exception):
    """The process dying between the provider's answer and our commit."""


class CrashAfterTheProviderAnswers:
    """The real provider adapter, but the handler never gets its answer: the call reaches the
    provider and is performed there, then this raises as a crash would."""

    def __init__(self, provider: PaymentProvider):
        self._provider = provider

    async def authorize(self, order_id: str, amount: Money, token: str) -> Authorized | Declined:
        await self._provider.authorize(order_id, amount, token)
        raise Crash

    async def capture(self, order_id: str, charge_id: str, amount: Money) -> None:
        await self._provider.capture(order_id, charge_id, amount)
        raise Crash

    async def void(self, order_id: str, charge_id: str) -> None:
        await self._provider.void(order_id, charge_id)
        raise Crash

    async def refund(self, order_id: str, charge_id: str, amount: Money) -> None:
        await self._provider.refund(order_id, charge_id, amount)
        raise Crash

    async def charge_of(self, order_id: str) -> ChargeState | None:
        return await self._provider.charge_of(order_id)


@pytest.mark.parametrize("token", ["tok_visa", "tok_mastercard"])
async def test_an_approved_card_authorizes_the_order_total(payments: Payments, token: str) -> None:
    order_id = new_order_id()
    await payments.deliver(order_placed(order_id, token=token, total=4499))

    payment = await payments.payment(order_id)
    assert payment is not None
    assert (payment.status, payment.authorized, payment.captured, payment.refunded) == (Status.AUTHORIZED, 4499, 0, 0)
    assert await payments.published(order_id) == [
        ("PaymentAuthorized", {"order_id": order_id, "amount": {"amount": 4499, "currency": USD}})
    ]
    [charge] = await payments.charges(order_id)
    assert (charge["id"], charge["status"], str(charge["amount"]), charge["currency"]) == (
        payment.charge_id,
        "requires_capture",
        "44.99",
        "usd",
    )


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("tok_chargeDeclined", "card_declined"),
        ("tok_insufficientFunds", "insufficient_funds"),
        ("tok_unknown", "invalid_token"),
    ],
)
async def test_a_declined_card_declines_the_payment_with_our_name_for_the_reason(
    payments: Payments, token: str, reason: str
) -> None:
    order_id = new_order_id()
    await payments.deliver(order_placed(order_id, token=token, total=1999))

    payment = await payments.payment(order_id)
    assert payment is not None and (payment.status, payment.authorized) == (Status.DECLINED, 0)
    assert await payments.published(order_id) == [
        ("PaymentDeclined", {"order_id": order_id, "amount": {"amount": 1999, "currency": USD}, "reason": reason})
    ]
    assert all(charge["status"] == "failed" for charge in await payments.charges(order_id))


async def test_a_repeated_order_placed_authorizes_once(payments: Payments) -> None:
    order_id = new_order_id()
    placed = order_placed(order_id)
    assert await payments.deliver(placed)
    assert not await payments.deliver(placed)  # the same event again: the inbox stops it
    assert await payments.deliver(order_placed(order_id))  # the same order, a new event id

    assert len(await payments.charges(order_id)) == 1
    assert [name for name, _ in await payments.published(order_id)] == ["PaymentAuthorized"]


async def test_a_confirmed_order_is_captured_once_however_often_it_is_confirmed(payments: Payments) -> None:
    order_id = new_order_id()
    await payments.deliver(order_placed(order_id, total=2500))
    confirmed = order_confirmed(order_id, total=2500)
    await payments.deliver(confirmed)
    await payments.deliver(confirmed)
    await asyncio.gather(*(payments.deliver(order_confirmed(order_id, total=2500)) for _ in range(3)))

    payment = await payments.payment(order_id)
    assert payment is not None and (payment.status, payment.captured) == (Status.CAPTURED, 2500)
    assert [name for name, _ in await payments.published(order_id)] == ["PaymentAuthorized", "PaymentCaptured"]
    assert await payments.provider_requests(order_id) == [f"{order_id}:authorize", f"{order_id}:capture"]
    [charge] = await payments.charges(order_id)
    assert (charge["status"], str(charge["amount_captured"])) == ("succeeded", "25.00")


async def test_cancelling_a_captured_order_refunds_the_full_amount(payments: Payments) -> None:
    order_id = new_order_id()
    await payments.deliver(order_placed(order_id, total=4499))
    await payments.deliver(order_confirmed(order_id, total=4499))
    await payments.deliver(order_cancelled(order_id, total=4499))
    await payments.deliver(order_cancelled(order_id, total=4499))

    payment = await payments.payment(order_id)
    assert payment is not None
    assert (payment.status, payment.captured, payment.refunded, payment.kept) == (Status.REFUNDED, 4499, 4499, 0)
    assert (await payments.published(order_id))[-1] == (
        "PaymentRefunded",
        {"order_id": order_id, "amount": {"amount": 4499, "currency": USD}},
    )
    [charge] = await payments.charges(order_id)
    assert str(charge["amount_refunded"]) == str(charge["amount_captured"]) == "44.99"


async def test_cancelling_an_authorized_order_voids_the_hold(payments: Payments) -> None:
    order_id = new_order_id()
    await payments.deliver(order_placed(order_id))
    await payments.deliver(order_cancelled(order_id, reason="out_of_stock"))

    payment = await payments.payment(order_id)
    assert payment is not None and (payment.status, payment.captured) == (Status.VOIDED, 0)
    assert [name for name, _ in await payments.published(order_id)] == ["PaymentAuthorized", "PaymentVoided"]
    assert [charge["status"] for charge in await payments.charges(order_id)] == ["canceled"]


async def test_cancelling_a_declined_order_moves_no_money(payments: Payments) -> None:
    order_id = new_order_id()
    await payments.deliver(order_placed(order_id, token="tok_chargeDeclined"))
    await payments.deliver(order_cancelled(order_id, reason="payment_declined"))

    payment = await payments.payment(order_id)
    assert payment is not None and payment.status is Status.DECLINED
    assert [name for name, _ in await payments.published(order_id)] == ["PaymentDeclined"]
    assert await payments.provider_requests(order_id) == [f"{order_id}:authorize"]


async def test_an_order_cancelled_before_it_was_placed_is_never_authorized(payments: Payments) -> None:
    order_id = new_order_id()
    await payments.deliver(order_cancelled(order_id))
    await payments.deliver(order_placed(order_id))
    await payments.deliver(order_confirmed(order_id))

    payment = await payments.payment(order_id)
    assert payment is not None and (payment.status, payment.authorized, payment.captured) == (Status.VOIDED, 0, 0)
    assert await payments.charges(order_id) == []
    assert await payments.published(order_id) == []


async def test_a_confirmation_before_the_authorization_is_recorded_fails_to_be_retried(payments: Payments) -> None:
    order_id = new_order_id()
    confirmed = order_confirmed(order_id)
    with pytest.raises(OrderNotPlacedYet):
        await payments.deliver(confirmed)
    await payments.deliver(order_placed(order_id))
    assert await payments.deliver(confirmed)  # the failed delivery left no inbox claim behind

    payment = await payments.payment(order_id)
    assert payment is not None and payment.status is Status.CAPTURED


async def test_a_crash_between_the_provider_call_and_the_commit_charges_once(payments: Payments) -> None:
    order_id = new_order_id()
    placed = order_placed(order_id, total=1234)
    with pytest.raises(Crash):
        await payments.deliver(placed, provider=CrashAfterTheProviderAnswers(payments.provider))
    assert await payments.payment(order_id) is None
    assert await payments.published(order_id) == []

    assert await payments.deliver(placed)  # redelivered after the restart

    [charge] = await payments.charges(order_id)
    payment = await payments.payment(order_id)
    assert payment is not None and (payment.status, payment.charge_id) == (Status.AUTHORIZED, charge["id"])
    assert [name for name, _ in await payments.published(order_id)] == ["PaymentAuthorized"]


async def test_a_crash_while_capturing_or_refunding_moves_the_money_once(payments: Payments) -> None:
    order_id = new_order_id()
    crashing = CrashAfterTheProviderAnswers(payments.provider)
    await payments.deliver(order_placed(order_id, total=800))
    for event in (order_confirmed(order_id, total=800), order_cancelled(order_id, total=800)):
        with pytest.raises(Crash):
            await payments.deliver(event, provider=crashing)
        await payments.deliver(event)

    payment = await payments.payment(order_id)
    assert payment is not None and (payment.status, payment.captured, payment.refunded) == (Status.REFUNDED, 800, 800)
    assert await payments.provider_requests(order_id) == [
        f"{order_id}:authorize",
        f"{order_id}:capture",
        f"{order_id}:refund",
    ]
    refunds = await payments.pool.fetchval("SELECT count(*) FROM provider_refunds WHERE charge = $1", payment.charge_id)
    assert refunds == 1


async def test_a_cancel_after_a_crashed_authorization_releases_the_hold_it_left(payments: Payments) -> None:
    order_id = new_order_id()
    placed = order_placed(order_id)
    with pytest.raises(Crash):
        await payments.deliver(placed, provider=CrashAfterTheProviderAnswers(payments.provider))
    await payments.deliver(order_cancelled(order_id))
    await payments.deliver(placed)

    assert [charge["status"] for charge in await payments.charges(order_id)] == ["canceled"]
    payment = await payments.payment(order_id)
    assert payment is not None and (payment.status, payment.captured) == (Status.VOIDED, 0)
    assert [name for name, _ in await payments.published(order_id)] == ["PaymentAuthorized", "PaymentVoided"]


async def test_a_cancel_after_a_crashed_capture_refunds_what_the_provider_captured(payments: Payments) -> None:
    order_id = new_order_id()
    confirmed = order_confirmed(order_id)
    await payments.deliver(order_placed(order_id))
    with pytest.raises(Crash):
        await payments.deliver(confirmed, provider=CrashAfterTheProviderAnswers(payments.provider))
    await payments.deliver(order_cancelled(order_id))
    await payments.deliver(confirmed)

    payment = await payments.payment(order_id)
    assert payment is not None and (payment.status, payment.kept) == (Status.REFUNDED, 0)
    assert [name for name, _ in await payments.published(order_id)] == [
        "PaymentAuthorized",
        "PaymentCaptured",
        "PaymentRefunded",
    ]
    [charge] = await payments.charges(order_id)
    assert charge["amount_refunded"] == charge["amount_captured"] > 0


async def test_the_payment_token_never_reaches_the_logs(payments: Payments) -> None:
    order_id = new_order_id()
    with structlog.testing.capture_logs() as logs:
        await payments.deliver(order_placed(order_id, token="tok_visa"))
        await payments.deliver(order_placed(new_order_id(), token="tok_secretlooking"))
    assert logs and not any("tok_" in repr(entry) for entry in logs)
