"""The payment aggregate alone: no database, no provider."""

from __future__ import annotations

import pytest

from payments.domain import (
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
    assert payment.operation_when_confirmed() is Operation.CAPTURE
    payment.mark_captured()
    assert payment.kept == 4499
    assert payment.operation_when_cancelled() is Operation.REFUND
    payment.mark_refunded()

    assert (payment.status, payment.authorized, payment.captured, payment.refunded, payment.kept) == (
        Status.REFUNDED, 4499, 4499, 4499, 0)
    assert payment.events == [PaymentAuthorized("order-1", TOTAL), PaymentCaptured("order-1", TOTAL),
                              PaymentRefunded("order-1", TOTAL)]


def test_a_cancelled_authorization_is_voided_and_nothing_is_captured() -> None:
    payment = new_payment()
    payment.mark_authorized("ch_1")
    assert payment.operation_when_cancelled() is Operation.VOID
    payment.mark_voided()
    assert (payment.status, payment.captured, payment.kept) == (Status.VOIDED, 0, 0)
    assert payment.events[-1] == PaymentVoided("order-1", TOTAL)
    assert payment.operation_when_confirmed() is None and payment.operation_when_cancelled() is None


def test_a_declined_payment_calls_for_nothing_more() -> None:
    payment = new_payment()
    payment.mark_declined("insufficient_funds")
    assert payment.events == [PaymentDeclined("order-1", TOTAL, "insufficient_funds")]
    assert payment.operation_when_confirmed() is None and payment.operation_when_cancelled() is None


def test_a_captured_payment_is_not_captured_again() -> None:
    payment = new_payment()
    payment.mark_authorized("ch_1")
    payment.mark_captured()
    assert payment.operation_when_confirmed() is None
    with pytest.raises(InvalidTransition):
        payment.mark_captured()


def test_the_tombstone_of_an_order_cancelled_before_it_was_placed_holds_nothing() -> None:
    payment = Payment.cancelled_before_placed("order-1", "user-1", TOTAL)
    assert (payment.status, payment.authorized, payment.events) == (Status.VOIDED, 0, [])
    assert payment.operation_when_confirmed() is None and payment.operation_when_cancelled() is None
    with pytest.raises(InvalidTransition):
        payment.mark_authorized("ch_1")


@pytest.mark.parametrize("step", ["mark_captured", "mark_voided", "mark_refunded"])
def test_nothing_moves_before_an_authorization(step: str) -> None:
    with pytest.raises(InvalidTransition):
        getattr(new_payment(), step)()


def test_money_is_never_negative() -> None:
    with pytest.raises(ValueError):
        Money(-1, "USD")
