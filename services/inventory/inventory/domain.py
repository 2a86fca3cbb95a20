"""Stock and reservations in plain Python: which moves an order's events cause, and when none.

Units of a product sit in one of three buckets (available, reserved, sold) and only ever move
between them, so `available + reserved + sold` changes only when an admin sets the stock. An
order's reservation walks a small state machine; every saga event is answered from its state,
so duplicates and events arriving out of order change nothing twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Bucket(StrEnum):
    AVAILABLE = "available"
    RESERVED = "reserved"
    SOLD = "sold"


class State(StrEnum):
    NEW = "new"  # never heard of: not stored
    RESERVED = "reserved"
    REJECTED = "rejected"
    SOLD = "sold"
    RELEASED = "released"
    RESTOCKED = "restocked"
    CANCELLED_UNPLACED = "cancelled_unplaced"  # tombstone: cancelled before it was placed


class InvalidQuantity(ValueError):
    pass


class StockCorrupted(RuntimeError):
    """A move the reservation's state promises cannot be made: the stock no longer matches it."""


@dataclass(frozen=True, order=True)
class Line:
    product_id: str
    quantity: int

    def to_dict(self) -> dict[str, Any]:
        return {"product_id": self.product_id, "quantity": self.quantity}


def merge_lines(items: Iterable[Mapping[str, Any]]) -> tuple[Line, ...]:
    """One line per product, sorted by product id (the order rows are locked in, so two orders
    never wait on each other's rows crosswise)."""
    totals: Counter[str] = Counter()
    for item in items:
        totals[item["product_id"]] += int(item["quantity"])
    return tuple(Line(product_id, quantity) for product_id, quantity in sorted(totals.items()))


@dataclass(frozen=True)
class Stock:
    product_id: str
    available: int = 0
    reserved: int = 0
    sold: int = 0


STARTER_STOCK = 100
"""The opening stock of each product of the starter catalog a new city is seeded with."""


def check_stock_quantity(quantity: int) -> int:
    if quantity < 0:
        raise InvalidQuantity("must not be negative")
    return quantity


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class StockReserved:
    order_id: str
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class StockRejected:
    order_id: str
    missing_product_ids: tuple[str, ...]


@dataclass(frozen=True)
class StockSold:
    order_id: str
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class StockReleased:
    order_id: str
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class StockRestocked:
    order_id: str
    lines: tuple[Line, ...]


Event = StockReserved | StockRejected | StockSold | StockReleased | StockRestocked


def event_data(event: Event) -> dict[str, Any]:
    if isinstance(event, StockRejected):
        return {"order_id": event.order_id, "missing_product_ids": list(event.missing_product_ids)}
    return {"order_id": event.order_id, "lines": [line.to_dict() for line in event.lines]}


@dataclass(frozen=True)
class Move:
    """Units of every line go from one bucket to another, all lines or none."""

    kind: str
    lines: tuple[Line, ...]
    source: Bucket
    target: Bucket


def reserving(lines: tuple[Line, ...]) -> Move:
    return Move("reserve", lines, Bucket.AVAILABLE, Bucket.RESERVED)


# ---------------------------------------------------------------- the aggregate


@dataclass
class Reservation:
    order_id: str
    state: State = State.NEW
    lines: tuple[Line, ...] = ()
    events: list[Event] = field(default_factory=list)

    @property
    def awaits_placement(self) -> bool:
        """Only an order never heard of reserves; a duplicate or a tombstoned one does nothing."""
        return self.state is State.NEW

    def reserve(self, lines: tuple[Line, ...], *, short: Iterable[str]) -> None:
        """Records the outcome of trying to reserve `lines`: `short` names the products that
        lacked units, in which case nothing was reserved."""
        if not self.awaits_placement:
            raise RuntimeError(f"order {self.order_id} is already {self.state}")
        missing = tuple(sorted(set(short)))
        if missing:
            self.state = State.REJECTED
            self.events.append(StockRejected(self.order_id, missing))
            return
        self.state, self.lines = State.RESERVED, lines
        self.events.append(StockReserved(self.order_id, lines))

    def sell(self) -> Move | None:
        """The order was confirmed: its reserved units become sold."""
        if self.state is not State.RESERVED:
            return None
        self.state = State.SOLD
        self.events.append(StockSold(self.order_id, self.lines))
        return Move("sell", self.lines, Bucket.RESERVED, Bucket.SOLD)

    def cancel(self) -> Move | None:
        """The order was cancelled: whatever it holds goes back on sale."""
        if self.state is State.RESERVED:
            self.state = State.RELEASED
            self.events.append(StockReleased(self.order_id, self.lines))
            return Move("release", self.lines, Bucket.RESERVED, Bucket.AVAILABLE)
        if self.state is State.SOLD:
            self.state = State.RESTOCKED
            self.events.append(StockRestocked(self.order_id, self.lines))
            return Move("restock", self.lines, Bucket.SOLD, Bucket.AVAILABLE)
        if self.state is State.NEW:
            self.state = State.CANCELLED_UNPLACED
        return None
