"""The payment aggregate alone: no database, no provider."""

from __future__ import annotations

import pytest

from payments.domain import (
    ChargeState,
    InvalidTransition,
    Money,
    Operation,
    Payment,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentVoided,
    Status,
)

TOTAL = Money(4499, "USD")


def new_payment() -> Payment:
    return Payment("order-1", "user-1", TOTAL)


def test_an_authorized_payment_is_captured_then_refunded_in_full() -> None:
    payment = new_payment()
    payment.mark_authorized("ch_1")
    assert payment.confirm() is Operation.CAPTURE
    payment.mark_captured()
    assert payment.kept == 4499
    assert payment.cancel() is Operation.REFUND
    payment.mark_refunded()

    assert (payment.status, payment.authorized, payment.captured, payment.refunded, payment.kept) == (
        Status.REFUNDED,
        4499,
        4499,
        4499,
        0,
    )
    assert payment.events == [
        PaymentAuthorized("order-1", TOTAL),
        PaymentCaptured("order-1", TOTAL),
        PaymentRefunded("order-1", TOTAL),
    ]


def test_a_cancelled_authorization_is_voided_and_nothing_is_captured() -> None:
    payment = new_payment()
    payment.mark_authorized("ch_1")
    assert payment.cancel() is Operation.VOID
    payment.mark_voided()
    assert (payment.status, payment.captured, payment.kept) == (Status.VOIDED, 0, 0)
    assert payment.events[-1] == PaymentVoided("order-1", TOTAL)
    assert payment.confirm() is None and payment.cancel() is None


def test_a_declined_payment_calls_for_nothing_more() -> None:
    payment = new_payment()
    payment.mark_declined("insufficient_funds")
    assert payment.events == [PaymentDeclined("order-1", TOTAL, "insufficient_funds")]
    assert payment.confirm() is None and payment.cancel() is None


def test_a_captured_payment_is_not_captured_again() -> None:
    payment = new_payment()
    payment.mark_authorized("ch_1")
    payment.mark_captured()
    assert payment.confirm() is None
    with pytest.raises(InvalidTransition):
        payment.mark_captured()


def test_an_order_cancelled_before_it_was_placed_leaves_a_tombstone_that_authorizes_nothing() -> None:
    payment = new_payment()
    assert payment.cancel() is None
    assert (payment.status, payment.authorized, payment.events) == (Status.VOIDED, 0, [])
    assert payment.place() is None and payment.confirm() is None and payment.cancel() is None
    with pytest.raises(InvalidTransition):
        payment.mark_authorized("ch_1")


def test_a_new_payment_calls_for_an_authorization_and_nothing_else() -> None:
    payment = new_payment()
    assert (payment.place(), payment.confirm()) == (Operation.AUTHORIZE, None)


@pytest.mark.parametrize(
    ("provider_status", "status", "recorded"),
    [
        (Status.AUTHORIZED, Status.AUTHORIZED, [PaymentAuthorized]),
        (Status.CAPTURED, Status.CAPTURED, [PaymentAuthorized, PaymentCaptured]),
        (Status.VOIDED, Status.VOIDED, [PaymentAuthorized, PaymentVoided]),
        (Status.REFUNDED, Status.REFUNDED, [PaymentAuthorized, PaymentCaptured, PaymentRefunded]),
        (Status.DECLINED, Status.PENDING, []),
    ],
)
def test_a_payment_catches_up_with_what_the_provider_did_and_records_it(
    provider_status: Status, status: Status, recorded: list[type]
) -> None:
    payment = new_payment()
    payment.catch_up(ChargeState("ch_1", provider_status))
    payment.catch_up(ChargeState("ch_1", provider_status))
    assert payment.status is status
    assert [type(event) for event in payment.events] == recorded


@pytest.mark.parametrize("step", ["mark_captured", "mark_voided", "mark_refunded"])
def test_nothing_moves_before_an_authorization(step: str) -> None:
    with pytest.raises(InvalidTransition):
        getattr(new_payment(), step)()


def test_money_is_never_negative() -> None:
    with pytest.raises(ValueError):
        Money(-1, "USD")
