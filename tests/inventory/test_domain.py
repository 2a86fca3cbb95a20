"""The reservation state machine, without I/O."""

from __future__ import annotations

from inventory.domain import (
    Bucket,
    Line,
    Reservation,
    State,
    StockRejected,
    StockReleased,
    StockReserved,
    StockRestocked,
    StockSold,
    merge_lines,
)

LINES = (Line("a", 2), Line("b", 1))


def reserved() -> Reservation:
    reservation = Reservation("o1")
    reservation.reserve(LINES, short=[])
    return reservation


def test_lines_of_one_product_are_merged_and_sorted() -> None:
    items = [{"product_id": "b", "quantity": 1}, {"product_id": "a", "quantity": 2}, {"product_id": "b", "quantity": 3}]
    assert merge_lines(items) == (Line("a", 2), Line("b", 4))


def test_a_placed_order_with_every_unit_is_reserved() -> None:
    reservation = reserved()
    assert reservation.state is State.RESERVED
    assert reservation.events == [StockReserved("o1", LINES)]


def test_a_placed_order_short_of_units_is_rejected_naming_each_missing_product_once() -> None:
    reservation = Reservation("o1")
    reservation.reserve(LINES, short=["b", "a", "b"])
    assert reservation.state is State.REJECTED
    assert reservation.events == [StockRejected("o1", ("a", "b"))]
    assert reservation.lines == ()


def test_confirmation_sells_the_reserved_units_once() -> None:
    reservation = reserved()
    move = reservation.sell()
    assert move is not None and (move.source, move.target, move.lines) == (Bucket.RESERVED, Bucket.SOLD, LINES)
    assert reservation.sell() is None
    assert reservation.events[-1] == StockSold("o1", LINES) and len(reservation.events) == 2


def test_cancelling_a_reservation_releases_it_and_cancelling_a_sale_restocks_it() -> None:
    held = reserved()
    move = held.cancel()
    assert move is not None and (move.source, move.target) == (Bucket.RESERVED, Bucket.AVAILABLE)
    assert held.events[-1] == StockReleased("o1", LINES) and held.cancel() is None

    sold = reserved()
    sold.sell()
    move = sold.cancel()
    assert move is not None and (move.source, move.target) == (Bucket.SOLD, Bucket.AVAILABLE)
    assert sold.events[-1] == StockRestocked("o1", LINES) and sold.cancel() is None


def test_a_cancellation_before_placement_leaves_a_tombstone_that_refuses_placement() -> None:
    reservation = Reservation("o1")
    assert reservation.cancel() is None
    assert reservation.state is State.CANCELLED_UNPLACED and not reservation.awaits_placement
    assert reservation.events == []


def test_a_rejected_or_released_order_never_sells() -> None:
    rejected = Reservation("o1")
    rejected.reserve(LINES, short=["a"])
    released = reserved()
    released.cancel()
    assert rejected.sell() is None and released.sell() is None
    assert rejected.cancel() is None
