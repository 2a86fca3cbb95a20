"""Each checker on crafted data: quiet on a consistent city, and naming what is wrong on a broken
one (the sabotage run in `test_chaos_suite.py` shows the same against a real city)."""

from __future__ import annotations

from tests.chaos import checkers
from tests.chaos.checkers import (
    Charge,
    ConsumerLag,
    Email,
    Movements,
    Order,
    Payment,
    Reservation,
    Shipment,
    Snapshot,
    Stock,
)

SHIPPED = Order("o-shipped", "SHIPPED", 2500, items=(("p1", 2),), history=("PENDING", "CONFIRMED", "SHIPPED"),
                tracking_number="TRK1")
CANCELLED = Order("o-cancelled", "CANCELLED", 1250, items=(("p1", 1),), history=("PENDING", "CONFIRMED", "CANCELLED"))
DECLINED = Order("o-declined", "CANCELLED", 1250, items=(("p2", 1),), history=("PENDING", "CANCELLED"))


def consistent() -> Snapshot:
    """Three orders, one shipped, one cancelled after confirmation (refunded, restocked), one
    declined; 10 units of p1 and 5 of p2 set by an admin."""
    return Snapshot(
        orders=[SHIPPED, CANCELLED, DECLINED],
        accepted={SHIPPED.id, CANCELLED.id, DECLINED.id},
        payments=[Payment(SHIPPED.id, "captured", 2500, 2500, 0), Payment(CANCELLED.id, "refunded", 1250, 1250, 1250),
                  Payment(DECLINED.id, "declined", 1250)],
        charges=[Charge("ch_1", SHIPPED.id, "succeeded", 2500, 2500, 0),
                 Charge("ch_2", CANCELLED.id, "succeeded", 1250, 1250, 1250),
                 Charge("ch_3", DECLINED.id, "failed", 1250)],
        stock=[Stock("p1", 8, 0, 2), Stock("p2", 5, 0, 0)],
        movements=[Movements("p1", 8, 0, 2, 10), Movements("p2", 5, 0, 0, 5)],
        reservations=[Reservation(SHIPPED.id, "sold"), Reservation(CANCELLED.id, "restocked"),
                      Reservation(DECLINED.id, "released")],
        initial_stock={"p1": 10, "p2": 5},
        shipments=[Shipment(SHIPPED.id, "dispatched", "TRK1"), Shipment(CANCELLED.id, "cancelled")],
        emails=[Email("<e1.order_confirmed@notifications.agora>", "order_confirmed", "a@x", SHIPPED.id),
                Email("<e2.order_shipped@notifications.agora>", "order_shipped", "a@x", SHIPPED.id),
                Email("<e3.order_confirmed@notifications.agora>", "order_confirmed", "a@x", CANCELLED.id),
                Email("<e4.order_cancelled@notifications.agora>", "order_cancelled", "a@x", CANCELLED.id),
                Email("<e5.order_cancelled@notifications.agora>", "order_cancelled", "a@x", DECLINED.id),
                Email("<e6.welcome@notifications.agora>", "welcome", "a@x")],
        consumers=[ConsumerLag("C_ORDERS", "payments", 0, 0)],
        unpublished={"orders": 0},
    )


def details(violations: list[checkers.Violation]) -> list[tuple[str, str]]:
    return [(v.subject, v.detail) for v in violations]


def test_a_consistent_city_has_no_violation() -> None:
    assert checkers.check(consistent()) == {name: [] for name in checkers.check(consistent())}


def test_a_pending_order_and_an_accepted_order_that_was_lost_are_reported() -> None:
    pending = Order("o-pending", "PENDING", 100, history=("PENDING",))
    found = checkers.orders_settle([SHIPPED, pending], accepted={SHIPPED.id, "o-lost"})
    assert details(found) == [
        ("o-lost", "the shop accepted it (202) but the orders database has no such order"),
        ("o-pending", "still PENDING (history PENDING)"),
    ]


def test_a_kept_order_not_fully_captured_is_reported_in_the_books_at_the_provider_and_in_the_sum() -> None:
    snapshot = consistent()
    snapshot.payments[0] = Payment(SHIPPED.id, "captured", 2500, 2500, 1)
    snapshot.charges[0] = Charge("ch_1", SHIPPED.id, "succeeded", 2500, 2400, 0)
    found = checkers.money_balances(snapshot.orders, snapshot.payments, snapshot.charges)
    assert [v.subject for v in found] == [SHIPPED.id, SHIPPED.id, "all orders"]
    assert "payments holds 2499 (captured 2500, refunded 1), expected 2500" in found[0].detail
    assert "the provider holds 2400, expected 2500" in found[1].detail
    assert "captured minus refunded is 2499, the kept orders total 2500" in found[2].detail


def test_a_cancelled_order_that_keeps_money_or_an_open_authorization_is_reported() -> None:
    snapshot = consistent()
    snapshot.payments[1] = Payment(CANCELLED.id, "captured", 1250, 1250, 0)
    snapshot.charges[2] = Charge("ch_3", DECLINED.id, "requires_capture", 1250)
    found = details(checkers.money_balances(snapshot.orders, snapshot.payments, snapshot.charges))
    assert (CANCELLED.id, "CANCELLED order of 1250: payments holds 1250 (captured 1250, refunded 0), expected 0") in found
    assert any(subject == CANCELLED.id and "cancelled but still holds money" in detail for subject, detail in found)
    assert (DECLINED.id, "cancelled but still holds money: payment declined, open authorizations ['ch_3']") in found


def test_a_payment_for_another_amount_than_its_orders_total_is_reported() -> None:
    """Even voided later: a hold of the wrong amount was placed on the customer's card."""
    snapshot = consistent()
    snapshot.payments[2] = Payment(DECLINED.id, "declined", 1251)
    found = details(checkers.money_balances(snapshot.orders, snapshot.payments, snapshot.charges))
    assert found == [(DECLINED.id, "CANCELLED order of 1250: its payment is for 1251")]


def test_money_taken_for_an_unknown_order_is_reported() -> None:
    found = checkers.money_balances([], [Payment("ghost", "captured", 5, 5)], [])
    assert ("ghost", "money taken for an order the orders database does not know") in details(found)


def test_stock_that_went_negative_or_does_not_match_its_ledger_is_reported() -> None:
    snapshot = consistent()
    snapshot.stock[1] = Stock("p2", -1, 0, 0)
    found = details(checkers.stock_balances(snapshot.stock, snapshot.movements, snapshot.reservations,
                                            snapshot.orders, snapshot.initial_stock))
    assert ("p2", "available is -1") in found
    assert ("p2", "available is -1 but its movements sum to 5") in found
    assert ("p2", "available + reserved + sold = -1, but the stock set by admins sums to 5") in found
    assert ("p2", "initial stock 5, but available + reserved + sold = -1") in found


def test_units_sold_that_no_kept_order_bought_and_stock_left_reserved_are_reported() -> None:
    snapshot = consistent()
    snapshot.stock[0] = Stock("p1", 7, 1, 2)
    snapshot.movements[0] = Movements("p1", 7, 1, 2, 10)
    snapshot.reservations[1] = Reservation(CANCELLED.id, "reserved")
    snapshot.reservations[0] = Reservation(SHIPPED.id, "released")
    found = details(checkers.stock_balances(snapshot.stock, snapshot.movements, snapshot.reservations,
                                            snapshot.orders, snapshot.initial_stock))
    assert ("p1", "1 still reserved though every order is settled") in found
    assert (CANCELLED.id, "cancelled but its stock is reserved") in found
    assert (SHIPPED.id, "SHIPPED but its reservation is released") in found
    oversold = [Stock("p1", 7, 0, 3), Stock("p2", 5, 0, 0)]
    found = details(checkers.stock_balances(oversold, [Movements("p1", 7, 0, 3, 10), snapshot.movements[1]],
                                            consistent().reservations, snapshot.orders))
    assert found == [("p1", "3 sold, but the kept orders bought 2")]


def test_two_charges_two_shipments_and_a_dispatched_cancelled_order_are_reported() -> None:
    snapshot = consistent()
    charges = [*snapshot.charges, Charge("ch_4", SHIPPED.id, "succeeded", 2500, 2500, 0)]
    shipments = [*snapshot.shipments, Shipment(SHIPPED.id, "created"), Shipment(DECLINED.id, "dispatched", "T9")]
    found = details(checkers.at_most_once(snapshot.orders, charges, shipments, snapshot.emails))
    assert (SHIPPED.id, "2 charges: ['ch_1', 'ch_4']") in found
    assert (SHIPPED.id, "2 captures: ['ch_1', 'ch_4']") in found
    assert (SHIPPED.id, "2 shipments") in found
    assert (DECLINED.id, "dispatched, but the order is CANCELLED") in found


def test_a_second_different_email_of_one_kind_is_reported_an_identical_resend_only_counted() -> None:
    snapshot = consistent()
    resend = Email("<e2.order_shipped@notifications.agora>", "order_shipped", "a@x", SHIPPED.id)
    assert checkers.at_most_once(snapshot.orders, snapshot.charges, snapshot.shipments, [*snapshot.emails, resend]) == []
    assert checkers.resent_emails([*snapshot.emails, resend]) == 1
    double = Email("<e9.order_shipped@notifications.agora>", "order_shipped", "a@x", SHIPPED.id)
    welcome_again = Email("<e8.welcome@notifications.agora>", "welcome", "a@x")
    found = details(checkers.at_most_once(snapshot.orders, snapshot.charges, snapshot.shipments,
                                          [*snapshot.emails, double, welcome_again]))
    assert found == [
        ("a@x", "2 different welcome emails: ['<e6.welcome@notifications.agora>', '<e8.welcome@notifications.agora>']"),
        (SHIPPED.id, "2 different order_shipped emails: ['<e2.order_shipped@notifications.agora>', "
                     "'<e9.order_shipped@notifications.agora>']"),
    ]


def test_a_status_without_its_email_and_a_shipped_order_without_shipment_are_reported() -> None:
    snapshot = consistent()
    emails = [email for email in snapshot.emails if email.kind != "order_shipped"]
    found = details(checkers.at_most_once(snapshot.orders, snapshot.charges, [], emails))
    assert (SHIPPED.id, "went SHIPPED but no order_shipped email was sent") in found
    assert (SHIPPED.id, "SHIPPED without a dispatched shipment") in found


def test_unpublished_events_and_undrained_consumers_are_reported() -> None:
    found = details(checkers.events_drained(
        [ConsumerLag("C_ORDERS", "payments", 0, 0), ConsumerLag("C_ORDERS", "notifications", 3, 1)],
        {"orders": 2, "payments": 0}))
    assert found == [("orders outbox", "2 events never published"),
                     ("C_ORDERS/notifications", "3 pending, 1 awaiting an ack")]


def test_a_confirmed_order_whose_shipment_keeps_failing_to_dispatch_is_reported() -> None:
    confirmed = Order("o-confirmed", "CONFIRMED", 100, history=("PENDING", "CONFIRMED"))
    waiting = Shipment(confirmed.id, "created", dispatch_attempts=1)
    assert checkers.orders_settle([confirmed], shipments=[waiting]) == []
    stuck = Shipment(confirmed.id, "created", dispatch_attempts=9)
    assert details(checkers.orders_settle([confirmed], shipments=[stuck])) == [
        (confirmed.id, "CONFIRMED but its shipment failed to dispatch 9 times")]


def test_an_api_answer_that_differs_from_the_orders_database_is_reported() -> None:
    assert checkers.api_agrees({SHIPPED.id: "SHIPPED"}, [SHIPPED]) == []
    found = details(checkers.api_agrees({SHIPPED.id: "CONFIRMED", "o-x": "HTTP 404"}, [SHIPPED]))
    assert found == [("o-shipped", "the API says CONFIRMED, the orders database SHIPPED"),
                     ("o-x", "the API says HTTP 404, the orders database None")]


def test_a_confirmation_overtaken_by_the_cancellation_is_not_missing() -> None:
    snapshot = consistent()
    emails = [email for email in snapshot.emails if email.kind != "order_confirmed"]
    found = details(checkers.at_most_once(snapshot.orders, snapshot.charges, snapshot.shipments, emails))
    assert (CANCELLED.id, "went CONFIRMED but no order_confirmed email was sent") not in found
    assert (SHIPPED.id, "went CONFIRMED but no order_confirmed email was sent") in found  # shipping does not excuse it
