"""The order and its saga state, in plain Python: no driver, broker or framework.

An order is placed PENDING. Inventory answers once (reserved or rejected) and payments answers
once (authorized or declined), in any order, late or twice. The first failure cancels the
order with its reason; both successes confirm it. A confirmed order is shipped when the carrier
dispatches it; a customer may cancel until then. Every status change is recorded in the
history and raises the event other services react to (`Order.events`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime

PENDING, CONFIRMED, SHIPPED, CANCELLED = "PENDING", "CONFIRMED", "SHIPPED", "CANCELLED"
OUT_OF_STOCK, PAYMENT_DECLINED, CUSTOMER_REQUEST = "out_of_stock", "payment_declined", "customer_request"
RESERVED, REJECTED = "reserved", "rejected"
AUTHORIZED, DECLINED = "authorized", "declined"

MAX_KEY_LENGTH = 255
MAX_FIELD_LENGTH = 200
MAX_TOTAL = 2**63 - 1  # what the orders table, the events and the Money message hold
MAX_TOKEN_LENGTH = 255
_PRINTABLE = re.compile(r"^[\x20-\x7e]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class Money:
    amount: int
    currency: str


@dataclass(frozen=True)
class Line:
    product_id: str
    name: str
    quantity: int
    unit_price: Money

    @property
    def line_total(self) -> Money:
        return Money(self.unit_price.amount * self.quantity, self.unit_price.currency)


@dataclass(frozen=True)
class Address:
    name: str
    line1: str
    line2: str
    city: str
    postal_code: str
    country: str


@dataclass(frozen=True)
class StatusChange:
    status: str
    at: datetime


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class PlaceOrder:
    user_id: str
    idempotency_key: str
    shipping_address: Address
    payment_token: str = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """Tells a repeat of this request from a different request under the same key."""
        body = {"shipping_address": asdict(self.shipping_address), "payment_token": self.payment_token}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class GetOrder:
    user_id: str
    order_id: str


@dataclass(frozen=True)
class ListOrders:
    user_id: str
    page: int
    page_size: int


@dataclass(frozen=True)
class CancelOrder:
    user_id: str
    order_id: str


# ---------------------------------------------------------------- events (data as the contracts name it)


@dataclass(frozen=True)
class OrderPlaced:
    order_id: str
    user_id: str
    items: tuple[Line, ...]
    total: Money
    payment_token: str = field(repr=False)
    shipping_address: Address


@dataclass(frozen=True)
class OrderConfirmed:
    order_id: str
    user_id: str
    items: tuple[Line, ...]
    total: Money
    shipping_address: Address


@dataclass(frozen=True)
class OrderCancelled:
    order_id: str
    user_id: str
    items: tuple[Line, ...]
    total: Money
    reason: str


@dataclass(frozen=True)
class OrderShipped:
    order_id: str
    user_id: str
    carrier: str
    tracking_number: str


Event = OrderPlaced | OrderConfirmed | OrderCancelled | OrderShipped


# ---------------------------------------------------------------- errors


class InvalidInput(Exception):
    def __init__(self, violations: list[tuple[str, str]]):
        super().__init__("; ".join(f"{name}: {message}" for name, message in violations))
        self.violations = violations


class EmptyCart(Exception):
    pass


class NotOrderable(Exception):
    """The cart holds something the catalog no longer sells, prices in several currencies, or
    totals more than can be paid."""


class OrderNotFound(Exception):
    pass


class KeyInFlight(Exception):
    """The first request with this idempotency key is still being processed."""


class PlacingInFlight(Exception):
    """Another order of this user is being placed, from the same cart, under another key."""


class KeyReused(Exception):
    """The idempotency key was used before for a different request."""


class InvalidTransition(Exception):
    pass


class AlreadyShipped(Exception):
    """The carrier took the parcel before the cancel reached shipping."""


# ---------------------------------------------------------------- rules


def validate_place_order(command: PlaceOrder) -> None:
    violations = []
    key = command.idempotency_key
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not _PRINTABLE.fullmatch(key):
        violations.append(("idempotency_key", f"must be 1 to {MAX_KEY_LENGTH} printable characters"))
    address = command.shipping_address
    for name in ("name", "line1", "city", "postal_code"):
        value = getattr(address, name)
        if not value.strip() or len(value) > MAX_FIELD_LENGTH:
            violations.append((f"shipping_address.{name}", f"must be 1 to {MAX_FIELD_LENGTH} characters"))
    if len(address.line2) > MAX_FIELD_LENGTH:
        violations.append(("shipping_address.line2", f"must be at most {MAX_FIELD_LENGTH} characters"))
    if not _COUNTRY.fullmatch(address.country):
        violations.append(("shipping_address.country", "must be an ISO 3166-1 alpha-2 code such as GB"))
    if not 1 <= len(command.payment_token) <= MAX_TOKEN_LENGTH or not _PRINTABLE.fullmatch(command.payment_token):
        violations.append(("payment_token", "must be a payment provider token such as tok_visa"))
    if violations:
        raise InvalidInput(violations)


def price_lines(quantities: Iterable[tuple[str, int]], prices: Mapping[str, tuple[str, Money]]) -> tuple[Line, ...]:
    """The cart's lines at the catalog's prices now (never the client's)."""
    lines = []
    for product_id, quantity in quantities:
        if product_id not in prices:
            raise NotOrderable(f"product {product_id} is no longer sold")
        name, unit_price = prices[product_id]
        lines.append(Line(product_id, name, quantity, unit_price))
    if not lines:
        raise EmptyCart("cart is empty")
    if len({line.unit_price.currency for line in lines}) > 1:
        raise NotOrderable("the cart's products are priced in different currencies")
    total = sum(line.line_total.amount for line in lines)
    if total > MAX_TOTAL:
        raise NotOrderable("the order's total is too large to be paid")
    if total == 0:
        # No card can be charged nothing: the provider refuses it, and the order would end
        # as a decline of a card that is fine.
        raise NotOrderable("the order's total is zero: there is nothing to pay")
    return tuple(lines)


class Order:
    def __init__(
        self,
        *,
        id: str,
        user_id: str,
        items: tuple[Line, ...],
        shipping_address: Address,
        history: list[StatusChange],
        status_reason: str | None = None,
        stock: str | None = None,
        payment: str | None = None,
        carrier: str | None = None,
        tracking_number: str | None = None,
    ):
        self.id = id
        self.user_id = user_id
        self.items = items
        self.shipping_address = shipping_address
        self.history = history
        self.status_reason = status_reason
        self.stock = stock
        self.payment = payment
        self.carrier = carrier
        self.tracking_number = tracking_number
        self.events: list[Event] = []

    @classmethod
    def place(cls, order_id: str, command: PlaceOrder, items: tuple[Line, ...], now: datetime) -> Order:
        order = cls(
            id=order_id,
            user_id=command.user_id,
            items=items,
            shipping_address=command.shipping_address,
            history=[StatusChange(PENDING, now)],
        )
        order.events.append(
            OrderPlaced(
                order.id, order.user_id, order.items, order.total, command.payment_token, order.shipping_address
            )
        )
        return order

    @property
    def status(self) -> str:
        return self.history[-1].status

    @property
    def total(self) -> Money:
        return Money(sum(line.line_total.amount for line in self.items), self.items[0].unit_price.currency)

    @property
    def created_at(self) -> datetime:
        return self.history[0].at

    @property
    def updated_at(self) -> datetime:
        return self.history[-1].at

    def record_stock(self, *, reserved: bool, now: datetime) -> None:
        """Inventory's answer. Only the first counts: a redelivery changes nothing."""
        if self.stock is None:
            self.stock = RESERVED if reserved else REJECTED
            self._decide(now)

    def record_payment(self, *, authorized: bool, now: datetime) -> None:
        """Payments' answer. Only the first counts: a redelivery changes nothing."""
        if self.payment is None:
            self.payment = AUTHORIZED if authorized else DECLINED
            self._decide(now)

    @property
    def is_final(self) -> bool:
        """Nothing changes a shipped or cancelled order any more."""
        return self.status in (SHIPPED, CANCELLED)

    @property
    def may_have_shipment(self) -> bool:
        """Shipping books a parcel on OrderConfirmed: before a customer's cancel of a confirmed
        order, shipping must cancel it, and may answer that it already left."""
        return self.status == CONFIRMED

    def cancel(self, now: datetime) -> None:
        """At the customer's request; allowed until the carrier has the parcel."""
        if self.status not in (PENDING, CONFIRMED):
            raise InvalidTransition(f"a {self.status} order cannot be cancelled")
        self._cancel(CUSTOMER_REQUEST, now)

    def record_shipment_cancelled(self, now: datetime) -> None:
        """Shipping cancelled the parcel, which it does only for a customer's cancel. Usually this
        order was cancelled right after; if that cancel was lost (a crash, a cut deadline), the
        order follows now, so it never stays confirmed with nothing to ship."""
        if self.status == CONFIRMED:
            self._cancel(CUSTOMER_REQUEST, now)

    def mark_shipped(self, carrier: str, tracking_number: str, now: datetime) -> None:
        """The carrier dispatched it. A cancelled order is never dispatched (shipping cancels the
        shipment before orders cancels a confirmed order), so a dispatch of one changes nothing
        here (the handler reports it as a broken invariant); nor does a repeat."""
        if self.is_final:
            return
        if self.status != CONFIRMED:
            raise InvalidTransition(f"a {self.status} order cannot be shipped")
        self.carrier, self.tracking_number = carrier, tracking_number
        self._move(SHIPPED, now)
        self.events.append(OrderShipped(self.id, self.user_id, carrier, tracking_number))

    def _decide(self, now: datetime) -> None:
        # Answers arriving after the order left PENDING (e.g. after a customer cancel) are kept,
        # but decide nothing: the cancellation already tells every participant to give back.
        if self.status != PENDING:
            return
        if self.stock == REJECTED:
            self._cancel(OUT_OF_STOCK, now)
        elif self.payment == DECLINED:
            self._cancel(PAYMENT_DECLINED, now)
        elif self.stock == RESERVED and self.payment == AUTHORIZED:
            self._move(CONFIRMED, now)
            self.events.append(OrderConfirmed(self.id, self.user_id, self.items, self.total, self.shipping_address))

    def _cancel(self, reason: str, now: datetime) -> None:
        self.status_reason = reason
        self._move(CANCELLED, now)
        self.events.append(OrderCancelled(self.id, self.user_id, self.items, self.total, reason))

    def _move(self, status: str, now: datetime) -> None:
        self.history.append(StatusChange(status, max(now, self.updated_at)))
