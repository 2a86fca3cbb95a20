"""The order's state machine, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders import domain
from orders.domain import (
    CANCELLED,
    CONFIRMED,
    PENDING,
    SHIPPED,
    Address,
    Line,
    Money,
    Order,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderShipped,
    PlaceOrder,
)

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
ADDRESS = Address("Ada Lovelace", "12 St James's Square", "", "London", "SW1Y 4JH", "GB")
LINES = (Line("p1", "Espresso cup", 2, Money(1250, "USD")), Line("p2", "Milk jug", 1, Money(1999, "USD")))


def place(token: str = "tok_visa", key: str = "key-1", address: Address = ADDRESS) -> PlaceOrder:
    return PlaceOrder(user_id="u1", idempotency_key=key, shipping_address=address, payment_token=token)


def new_order() -> Order:
    order = Order.place("o1", place(), LINES, NOW)
    order.events.clear()
    return order


def later(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


def test_a_placed_order_is_pending_and_carries_what_payments_and_inventory_need():
    order = Order.place("o1", place(), LINES, NOW)

    assert order.status == PENDING and order.status_reason is None
    assert order.total == Money(4499, "USD")
    assert [(change.status, change.at) for change in order.history] == [(PENDING, NOW)]
    assert order.events == [OrderPlaced("o1", "u1", LINES, Money(4499, "USD"), "tok_visa", ADDRESS)]


def test_the_payment_token_never_shows_in_a_repr():
    assert "tok_secret" not in repr(place(token="tok_secret"))
    assert "tok_secret" not in repr(Order.place("o1", place(token="tok_secret"), LINES, NOW).events)


def test_reserved_and_authorized_confirm_the_order():
    order = new_order()
    order.record_stock(reserved=True, now=later(1))
    assert order.status == PENDING and order.events == []

    order.record_payment(authorized=True, now=later(2))

    assert order.status == CONFIRMED
    assert [change.status for change in order.history] == [PENDING, CONFIRMED]
    assert order.updated_at == later(2)
    assert order.events == [OrderConfirmed("o1", "u1", LINES, Money(4499, "USD"), ADDRESS)]


def test_rejected_stock_cancels_at_once_without_waiting_for_payment():
    order = new_order()
    order.record_stock(reserved=False, now=later(1))

    assert (order.status, order.status_reason) == (CANCELLED, "out_of_stock")
    assert order.events == [OrderCancelled("o1", "u1", LINES, Money(4499, "USD"), "out_of_stock")]


def test_a_declined_payment_after_reserved_stock_cancels_with_payment_declined():
    order = new_order()
    order.record_stock(reserved=True, now=later(1))
    order.record_payment(authorized=False, now=later(2))

    assert (order.status, order.status_reason) == (CANCELLED, "payment_declined")


def test_an_answer_arriving_after_a_cancellation_changes_nothing_but_is_kept():
    order = new_order()
    order.record_payment(authorized=False, now=later(1))
    order.events.clear()

    order.record_stock(reserved=True, now=later(2))

    assert (order.status, order.status_reason) == (CANCELLED, "payment_declined")
    assert order.stock == "reserved"
    assert order.events == []


@pytest.mark.parametrize("status_before", [PENDING, CONFIRMED])
def test_a_customer_may_cancel_until_dispatch(status_before):
    order = new_order()
    if status_before == CONFIRMED:
        order.record_stock(reserved=True, now=later(1))
        order.record_payment(authorized=True, now=later(1))
        order.events.clear()

    order.cancel(later(2))

    assert (order.status, order.status_reason) == (CANCELLED, "customer_request")
    assert order.events == [OrderCancelled("o1", "u1", LINES, Money(4499, "USD"), "customer_request")]


def test_only_a_confirmed_order_may_have_a_parcel_shipping_must_cancel_first():
    pending, confirmed, shipped = new_order(), new_order(), new_order()
    for order in (confirmed, shipped):
        order.record_stock(reserved=True, now=later(1))
        order.record_payment(authorized=True, now=later(1))
    shipped.mark_shipped("parcelfast", "PF1", later(2))

    assert [order.may_have_shipment for order in (pending, confirmed, shipped)] == [False, True, False]


def test_a_shipped_or_cancelled_order_cannot_be_cancelled():
    shipped = new_order()
    shipped.record_stock(reserved=True, now=later(1))
    shipped.record_payment(authorized=True, now=later(1))
    shipped.mark_shipped("parcelfast", "PF1", later(2))
    cancelled = new_order()
    cancelled.cancel(later(1))

    for order in (shipped, cancelled):
        order.events.clear()
        with pytest.raises(domain.InvalidTransition):
            order.cancel(later(3))
        assert order.events == []


def test_a_dispatch_ships_a_confirmed_order_once():
    order = new_order()
    order.record_stock(reserved=True, now=later(1))
    order.record_payment(authorized=True, now=later(1))
    order.events.clear()

    order.mark_shipped("parcelfast", "PF1", later(2))
    order.mark_shipped("parcelfast", "PF1", later(3))

    assert order.status == SHIPPED
    assert (order.carrier, order.tracking_number) == ("parcelfast", "PF1")
    assert order.events == [OrderShipped("o1", "u1", "parcelfast", "PF1")]


def test_a_late_dispatch_of_a_cancelled_order_is_ignored():
    order = new_order()
    order.cancel(later(1))
    order.events.clear()

    order.mark_shipped("parcelfast", "PF1", later(2))

    assert order.status == CANCELLED and order.events == []


def test_a_pending_order_cannot_be_dispatched():
    with pytest.raises(domain.InvalidTransition):
        new_order().mark_shipped("parcelfast", "PF1", later(1))


def test_history_never_goes_back_in_time_when_clocks_disagree():
    order = new_order()
    order.cancel(NOW - timedelta(seconds=5))

    assert order.history[-1].at == NOW


# ---------------------------------------------------------------- every arrival order

ANSWERS = {
    "reserved": lambda order, now: order.record_stock(reserved=True, now=now),
    "rejected": lambda order, now: order.record_stock(reserved=False, now=now),
    "authorized": lambda order, now: order.record_payment(authorized=True, now=now),
    "declined": lambda order, now: order.record_payment(authorized=False, now=now),
}


@st.composite
def deliveries(draw: st.DrawFn) -> list[str]:
    """Inventory's one answer and payments' one answer, each delivered 1 to 3 times, shuffled."""
    stock = draw(st.sampled_from(["reserved", "rejected"]))
    payment = draw(st.sampled_from(["authorized", "declined"]))
    sent = [stock] * draw(st.integers(1, 3)) + [payment] * draw(st.integers(1, 3))
    return draw(st.permutations(sent))


def expected_outcome(sequence: list[str]) -> tuple[str, str | None]:
    if "rejected" not in sequence and "declined" not in sequence:
        return CONFIRMED, None
    first_failure = next(answer for answer in sequence if answer in ("rejected", "declined"))
    return CANCELLED, "out_of_stock" if first_failure == "rejected" else "payment_declined"


@given(deliveries())
def test_any_arrival_order_and_duplicates_decide_once(sequence):
    order = new_order()
    for minute, answer in enumerate(sequence):
        ANSWERS[answer](order, later(minute))

    assert (order.status, order.status_reason) == expected_outcome(sequence)
    assert len(order.events) == 1
    assert len(order.history) == 2
    decided = order.events[0]
    assert isinstance(decided, OrderConfirmed if order.status == CONFIRMED else OrderCancelled)


def test_the_fingerprint_tells_a_repeat_from_a_different_request():
    assert place().fingerprint == place().fingerprint
    assert place().fingerprint != place(token="tok_mastercard").fingerprint
    assert place().fingerprint != place(address=Address("Ada", "1 Road", "", "London", "N1", "GB")).fingerprint
    assert place(key="key-1").fingerprint == place(key="key-2").fingerprint


def test_lines_are_priced_by_the_catalog():
    prices = {"p1": ("Espresso cup", Money(1250, "USD")), "p2": ("Milk jug", Money(1999, "USD"))}

    assert domain.price_lines([("p1", 2), ("p2", 1)], prices) == LINES


def test_an_empty_cart_or_a_product_no_longer_sold_cannot_be_ordered():
    with pytest.raises(domain.EmptyCart):
        domain.price_lines([], {})
    with pytest.raises(domain.NotOrderable):
        domain.price_lines([("gone", 1)], {})
    with pytest.raises(domain.NotOrderable):
        domain.price_lines([("p1", 1), ("p2", 1)], {"p1": ("a", Money(1, "USD")), "p2": ("b", Money(1, "EUR"))})


def test_a_total_beyond_what_can_be_stored_cannot_be_ordered():
    prices = {"p1": ("a", Money(2**62, "USD")), "p2": ("b", Money(2**62, "USD"))}

    assert domain.price_lines([("p1", 1)], prices)[0].line_total.amount == 2**62
    with pytest.raises(domain.NotOrderable, match="too large"):
        domain.price_lines([("p1", 1), ("p2", 1)], prices)


def test_place_order_names_every_bad_field():
    bad = PlaceOrder(
        user_id="u1",
        idempotency_key="",
        payment_token="",
        shipping_address=Address(name=" ", line1="", line2="x" * 201, city="", postal_code="", country="gb"),
    )

    with pytest.raises(domain.InvalidInput) as caught:
        domain.validate_place_order(bad)

    assert {field for field, _ in caught.value.violations} == {
        "idempotency_key",
        "payment_token",
        "shipping_address.name",
        "shipping_address.line1",
        "shipping_address.line2",
        "shipping_address.city",
        "shipping_address.postal_code",
        "shipping_address.country",
    }


def test_a_valid_request_passes_validation():
    domain.validate_place_order(place(key="a" * 255))


def test_a_trailing_newline_is_not_printable_text():
    """`$` matches before a final newline: the checks match the whole value."""
    bad = place(key="key\n", token="tok_visa\n")
    with pytest.raises(domain.InvalidInput) as caught:
        domain.validate_place_order(bad)
    assert {field for field, _ in caught.value.violations} == {"idempotency_key", "payment_token"}


def test_an_order_of_free_products_is_not_orderable():
    prices = {"p1": ("Sample", Money(0, "USD"))}
    with pytest.raises(domain.NotOrderable, match="total is zero"):
        domain.price_lines([("p1", 2)], prices)
    free_and_paid = {**prices, "p2": ("Cup", Money(1250, "USD"))}
    assert len(domain.price_lines([("p1", 1), ("p2", 1)], free_and_paid)) == 2
