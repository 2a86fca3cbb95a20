"""The checkout saga's invariants (DESIGN.md, "The checkout saga"), each a pure function.

Every checker takes plain records read from the services' own databases, the mail sink and the
broker (`tests/chaos/snapshot.py` reads them) and returns the violations it found, each saying
which invariant, about what, and what is wrong. An empty list means the invariant holds. Nothing
here reads or writes anything, so each checker is tested on crafted data in `test_checkers.py`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

STUCK_AFTER_ATTEMPTS = 3
"""A shipment whose dispatch failed this often is not waiting: it will never leave."""
TERMINAL = frozenset({"CONFIRMED", "SHIPPED", "CANCELLED"})
KEPT = frozenset({"CONFIRMED", "SHIPPED"})
ORDER_EMAILS = {"CONFIRMED": "order_confirmed", "SHIPPED": "order_shipped", "CANCELLED": "order_cancelled"}
OUTDATE_CONFIRMATION = ("order_cancelled",)


@dataclass(frozen=True)
class Violation:
    invariant: str
    subject: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"invariant": self.invariant, "subject": self.subject, "detail": self.detail}


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class Order:
    """orders.orders: `items` as (product_id, quantity); `history` the statuses it went through."""

    id: str
    status: str
    total: int
    currency: str = "USD"
    items: tuple[tuple[str, int], ...] = ()
    history: tuple[str, ...] = ()
    tracking_number: str | None = None

    @property
    def kept(self) -> bool:
        return self.status in KEPT


@dataclass(frozen=True)
class Payment:
    """payments.payments, in minor units."""

    order_id: str
    status: str
    amount: int
    captured: int = 0
    refunded: int = 0


@dataclass(frozen=True)
class Charge:
    """The payment provider's own record (payments.provider_charges), converted to minor units."""

    id: str
    order_id: str
    status: str
    amount: int
    captured: int = 0
    refunded: int = 0


@dataclass(frozen=True)
class Stock:
    product_id: str
    available: int
    reserved: int
    sold: int


@dataclass(frozen=True)
class Movements:
    """inventory.stock_movements summed per product: each bucket's deltas, and the adjustments."""

    product_id: str
    available: int
    reserved: int
    sold: int
    adjusted: int


@dataclass(frozen=True)
class Reservation:
    order_id: str
    state: str
    lines: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Shipment:
    order_id: str
    status: str
    tracking_number: str | None = None
    dispatch_attempts: int = 0


@dataclass(frozen=True)
class Email:
    """One message the SMTP sink received."""

    message_id: str
    kind: str
    recipient: str
    order_id: str | None = None


@dataclass(frozen=True)
class ConsumerLag:
    stream: str
    consumer: str
    num_pending: int
    num_ack_pending: int


@dataclass
class Snapshot:
    """Everything the checkers look at, read once the city is healed and quiet."""

    orders: list[Order] = field(default_factory=list)
    accepted: set[str] = field(default_factory=set)
    """Ids of the orders the shop answered 202 for."""
    payments: list[Payment] = field(default_factory=list)
    charges: list[Charge] = field(default_factory=list)
    stock: list[Stock] = field(default_factory=list)
    movements: list[Movements] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)
    initial_stock: dict[str, int] = field(default_factory=dict)
    """What the suite set through the admin API, per product it created."""
    shipments: list[Shipment] = field(default_factory=list)
    emails: list[Email] = field(default_factory=list)
    consumers: list[ConsumerLag] = field(default_factory=list)
    unpublished: dict[str, int] = field(default_factory=dict)
    """Outbox rows not yet published, per service."""
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    api_statuses: dict[str, str] = field(default_factory=dict)
    """Order id -> the status `GET /api/v1/orders/{id}` answered its owner."""


# ---------------------------------------------------------------- checkers


def orders_settle(orders: Iterable[Order], accepted: Iterable[str] = (),
                  shipments: Iterable[Shipment] = ()) -> list[Violation]:
    """Every accepted order exists and ends CONFIRMED/SHIPPED or CANCELLED; and a CONFIRMED one
    is not stuck there with a shipment the carrier keeps refusing to dispatch."""
    found = {order.id: order for order in orders}
    violations = [
        Violation("orders settle", order_id, "the shop accepted it (202) but the orders database has no such order")
        for order_id in sorted(set(accepted) - set(found))
    ]
    violations += [
        Violation("orders settle", order.id, f"still {order.status} (history {' > '.join(order.history)})")
        for order in found.values()
        if order.status not in TERMINAL
    ]
    violations += [
        Violation("orders settle", shipment.order_id,
                  f"{found[shipment.order_id].status} but its shipment failed to dispatch "
                  f"{shipment.dispatch_attempts} times")
        for shipment in shipments
        if shipment.status == "created" and shipment.dispatch_attempts >= STUCK_AFTER_ATTEMPTS
        and shipment.order_id in found
    ]
    return violations


def api_agrees(api_statuses: dict[str, str], orders: Iterable[Order]) -> list[Violation]:
    """The shop's API tells each customer what the orders database holds."""
    found = {order.id: order.status for order in orders}
    return [
        Violation("api agrees", order_id, f"the API says {status}, the orders database {found.get(order_id)}")
        for order_id, status in sorted(api_statuses.items())
        if status != found.get(order_id)
    ]


def money_balances(orders: Iterable[Order], payments: Iterable[Payment], charges: Iterable[Charge]) -> list[Violation]:
    """Captured minus refunded equals the total of each kept order, to the cent, and zero for a
    cancelled one (which holds no money: no authorization left open); in the payments service's
    books and at the provider alike; each payment is for its order's total; and the sums over all
    orders agree."""
    orders = list(orders)
    by_id = {order.id: order for order in orders}
    payment_of = {payment.order_id: payment for payment in payments}
    charges_of: dict[str, list[Charge]] = defaultdict(list)
    for charge in charges:
        charges_of[charge.order_id].append(charge)
    violations = []
    for order_id in sorted((set(payment_of) | set(charges_of)) - set(by_id)):
        violations.append(Violation("money balances", order_id, "money taken for an order the orders database does not know"))
    for order in orders:
        if order.status not in TERMINAL:
            continue
        owed = order.total if order.kept else 0
        payment = payment_of.get(order.id)
        if payment is not None and payment.amount != order.total:
            violations.append(Violation("money balances", order.id,
                                        f"{order.status} order of {order.total}: its payment is for {payment.amount}"))
        kept = payment.captured - payment.refunded if payment else 0
        if kept != owed:
            violations.append(Violation("money balances", order.id,
                                        f"{order.status} order of {order.total}: payments holds {kept} "
                                        f"(captured {payment.captured if payment else 0}, "
                                        f"refunded {payment.refunded if payment else 0}), expected {owed}"))
        at_provider = sum(charge.captured - charge.refunded for charge in charges_of.get(order.id, []))
        if at_provider != owed:
            violations.append(Violation("money balances", order.id,
                                        f"{order.status} order of {order.total}: the provider holds {at_provider}, "
                                        f"expected {owed}"))
        if order.status == "CANCELLED":
            open_authorizations = [c.id for c in charges_of.get(order.id, []) if c.status == "requires_capture"]
            if open_authorizations or (payment and payment.status in ("pending", "authorized", "captured")):
                violations.append(Violation("money balances", order.id,
                                            f"cancelled but still holds money: payment "
                                            f"{payment.status if payment else None}, open authorizations "
                                            f"{open_authorizations}"))
    kept_total = sum(order.total for order in orders if order.kept)
    net = sum(p.captured - p.refunded for p in payment_of.values())
    if net != kept_total:
        violations.append(Violation("money balances", "all orders",
                                    f"captured minus refunded is {net}, the kept orders total {kept_total}"))
    return violations


def stock_balances(
    stock: Iterable[Stock],
    movements: Iterable[Movements],
    reservations: Iterable[Reservation],
    orders: Iterable[Order],
    initial: dict[str, int] | None = None,
) -> list[Violation]:
    """No bucket negative; each row equals its movements; `initial + restocks = available +
    reserved + sold` (restocks move sold units back to available, so only adjustments change the
    sum); what is sold is exactly what the kept orders bought; nothing is reserved once every
    order is settled; a cancelled order holds no stock and a kept one is sold."""
    violations = []
    rows = {row.product_id: row for row in stock}
    moved = {m.product_id: m for m in movements}
    orders = list(orders)
    for row in rows.values():
        for bucket in ("available", "reserved", "sold"):
            if getattr(row, bucket) < 0:
                violations.append(Violation("stock balances", row.product_id, f"{bucket} is {getattr(row, bucket)}"))
        ledger = moved.get(row.product_id, Movements(row.product_id, 0, 0, 0, 0))
        for bucket in ("available", "reserved", "sold"):
            if getattr(ledger, bucket) != getattr(row, bucket):
                violations.append(Violation("stock balances", row.product_id,
                                            f"{bucket} is {getattr(row, bucket)} but its movements sum to "
                                            f"{getattr(ledger, bucket)}"))
        on_hand = row.available + row.reserved + row.sold
        if ledger.adjusted != on_hand:
            violations.append(Violation("stock balances", row.product_id,
                                        f"available + reserved + sold = {on_hand}, but the stock set by admins "
                                        f"sums to {ledger.adjusted}"))
    for product_id, quantity in sorted((initial or {}).items()):
        row = rows.get(product_id)
        on_hand = row.available + row.reserved + row.sold if row else 0
        if on_hand != quantity:
            violations.append(Violation("stock balances", product_id,
                                        f"initial stock {quantity}, but available + reserved + sold = {on_hand}"))
    sold_to_kept: Counter[str] = Counter()
    for order in orders:
        if order.kept:
            for product_id, quantity in order.items:
                sold_to_kept[product_id] += quantity
    for product_id in sorted(set(sold_to_kept) | set(rows)):
        sold = rows[product_id].sold if product_id in rows else 0
        if sold != sold_to_kept[product_id]:
            violations.append(Violation("stock balances", product_id,
                                        f"{sold} sold, but the kept orders bought {sold_to_kept[product_id]}"))
    if all(order.status in TERMINAL for order in orders):
        for row in rows.values():
            if row.reserved:
                violations.append(Violation("stock balances", row.product_id,
                                            f"{row.reserved} still reserved though every order is settled"))
    state_of = {reservation.order_id: reservation.state for reservation in reservations}
    for order in orders:
        state = state_of.get(order.id)
        if order.status == "CANCELLED" and state in ("reserved", "sold"):
            violations.append(Violation("stock balances", order.id, f"cancelled but its stock is {state}"))
        if order.kept and state != "sold":
            violations.append(Violation("stock balances", order.id, f"{order.status} but its reservation is {state}"))
    return violations


def at_most_once(
    orders: Iterable[Order], charges: Iterable[Charge], shipments: Iterable[Shipment], emails: Iterable[Email]
) -> list[Violation]:
    """At most one charge (and one capture), one shipment and one email of each kind per order,
    one welcome per customer; a cancelled order is never dispatched, a shipped one was; and each
    status the order went through got its one email, but for a confirmation overtaken by the
    order's cancellation email, which notifications drops.

    The SMTP sink may hold a message twice with the same Message-ID: notifications' documented
    window (a crash between the SMTP server's accept and the commit) resends the identical
    message, which a receiver shows once. Those are not violations (`resent_emails` counts them);
    two different messages of one kind for one order are."""
    violations = []
    orders = {order.id: order for order in orders}
    charges_of: dict[str, list[Charge]] = defaultdict(list)
    for charge in charges:
        charges_of[charge.order_id].append(charge)
    for order_id, its in sorted(charges_of.items()):
        if len(its) > 1:
            violations.append(Violation("at most once", order_id, f"{len(its)} charges: {sorted(c.id for c in its)}"))
        captured = [c.id for c in its if c.captured]
        if len(captured) > 1:
            violations.append(Violation("at most once", order_id, f"{len(captured)} captures: {sorted(captured)}"))
    shipments_of: dict[str, list[Shipment]] = defaultdict(list)
    for shipment in shipments:
        shipments_of[shipment.order_id].append(shipment)
    for order_id, its in sorted(shipments_of.items()):
        if len(its) > 1:
            violations.append(Violation("at most once", order_id, f"{len(its)} shipments"))
        order = orders.get(order_id)
        dispatched = [s for s in its if s.status == "dispatched"]
        if dispatched and (order is None or order.status == "CANCELLED"):
            violations.append(Violation("at most once", order_id,
                                        f"dispatched, but the order is {order.status if order else 'unknown'}"))
    for order in orders.values():
        if order.status == "SHIPPED" and not any(s.status == "dispatched" for s in shipments_of.get(order.id, [])):
            violations.append(Violation("at most once", order.id, "SHIPPED without a dispatched shipment"))
    distinct: dict[tuple[str, str], set[str]] = defaultdict(set)
    for email in emails:
        distinct[(email.order_id or email.recipient, email.kind)].add(email.message_id)
    for (about, kind), message_ids in sorted(distinct.items()):
        if len(message_ids) > 1:
            violations.append(Violation("at most once", about, f"{len(message_ids)} different {kind} emails: "
                                                               f"{sorted(message_ids)}"))
    for order in orders.values():
        for status, kind in ORDER_EMAILS.items():
            if status in order.history and (order.id, kind) not in distinct:
                if kind == "order_confirmed" and any((order.id, later) in distinct for later in OUTDATE_CONFIRMATION):
                    continue  # overtaken by the cancellation: notifications drops it rather than contradict that
                violations.append(Violation("at most once", order.id, f"went {status} but no {kind} email was sent"))
    return violations


def resent_emails(emails: Iterable[Email]) -> int:
    """Messages the sink holds more than once under one Message-ID (see `at_most_once`)."""
    counts = Counter(email.message_id for email in emails)
    return sum(count - 1 for count in counts.values())


def events_drained(consumers: Iterable[ConsumerLag], unpublished: dict[str, int]) -> list[Violation]:
    """No event left unprocessed: every outbox row published, every durable consumer with nothing
    pending and nothing awaiting an ack. Dead letters are reported beside, not counted here."""
    violations = [
        Violation("events drained", f"{service} outbox", f"{count} events never published")
        for service, count in sorted(unpublished.items())
        if count
    ]
    violations += [
        Violation("events drained", f"{lag.stream}/{lag.consumer}",
                  f"{lag.num_pending} pending, {lag.num_ack_pending} awaiting an ack")
        for lag in consumers
        if lag.num_pending or lag.num_ack_pending
    ]
    return violations


def check(snapshot: Snapshot) -> dict[str, list[Violation]]:
    """Every checker over one snapshot, by name."""
    return {
        "orders_settle": orders_settle(snapshot.orders, snapshot.accepted, snapshot.shipments),
        "api_agrees": api_agrees(snapshot.api_statuses, snapshot.orders),
        "money_balances": money_balances(snapshot.orders, snapshot.payments, snapshot.charges),
        "stock_balances": stock_balances(snapshot.stock, snapshot.movements, snapshot.reservations, snapshot.orders,
                                         snapshot.initial_stock),
        "at_most_once": at_most_once(snapshot.orders, snapshot.charges, snapshot.shipments, snapshot.emails),
        "events_drained": events_drained(snapshot.consumers, snapshot.unpublished),
    }
