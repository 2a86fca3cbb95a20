"""The payment of one order: which provider operation each order event calls for, and the
money it moves. Plain Python: it checks the invariants and records the events to publish.

    pending ──authorized──▶ authorized ──captured──▶ captured ──refunded──▶ refunded
       │                        │
       └──declined──▶ declined  └──voided──▶ voided

Money only moves forward and never out of thin air: 0 ≤ refunded ≤ captured ≤ authorized ≤
amount. An order cancelled before payments heard it was placed gets a tombstone (`voided`,
nothing authorized) so a late `OrderPlaced` authorizes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"
    DECLINED = "declined"
    REFUNDED = "refunded"


class Operation(StrEnum):
    """What payments asks of the provider. With the order id it makes the idempotency key."""

    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"


@dataclass(frozen=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if self.amount < 0:
            raise ValueError("money is never negative")

    def as_data(self) -> dict[str, object]:
        return {"amount": self.amount, "currency": self.currency}


@dataclass(frozen=True)
class ChargeState:
    """Where the provider's charge for the order stands, in our terms."""

    charge_id: str
    status: Status


class InvalidTransition(Exception):
    """The provider's answer does not fit the payment's state: a bug, never a retry away from success."""


# ------------------------------------------------------------------ events


@dataclass(frozen=True)
class PaymentAuthorized:
    order_id: str
    amount: Money


@dataclass(frozen=True)
class PaymentDeclined:
    order_id: str
    amount: Money
    reason: str


@dataclass(frozen=True)
class PaymentCaptured:
    order_id: str
    amount: Money


@dataclass(frozen=True)
class PaymentVoided:
    order_id: str
    amount: Money


@dataclass(frozen=True)
class PaymentRefunded:
    order_id: str
    amount: Money


Event = PaymentAuthorized | PaymentDeclined | PaymentCaptured | PaymentVoided | PaymentRefunded


# ------------------------------------------------------------------ the aggregate

# A charge in one of these states was authorized at some point.
_HOLDS_OR_HELD = (Status.AUTHORIZED, Status.CAPTURED, Status.VOIDED, Status.REFUNDED)


@dataclass
class Payment:
    order_id: str
    user_id: str
    amount: Money
    status: Status = Status.PENDING
    authorized: int = 0
    captured: int = 0
    refunded: int = 0
    charge_id: str | None = None
    decline_reason: str | None = None
    version: int = 0
    """Bumped by every save; a save of a stale copy is refused."""
    events: list[Event] = field(default_factory=list)

    # ---------------------------------------------------------- what each order event calls for
    # The provider operation to perform, then to record with the matching `mark_*`.

    def place(self) -> Operation | None:
        """The order was placed: authorize its total, unless that was decided already or the
        order was cancelled first."""
        return Operation.AUTHORIZE if self.status is Status.PENDING else None

    def confirm(self) -> Operation | None:
        """The order was confirmed: capture, once. A repeated or late confirmation finds nothing
        left to capture."""
        return Operation.CAPTURE if self.status is Status.AUTHORIZED else None

    def cancel(self) -> Operation | None:
        """The order was cancelled: release a hold, refund a capture; a decline holds nothing.
        Cancelled before anything was authorized, the payment becomes a tombstone (`voided`,
        nothing held) so that a late `OrderPlaced` authorizes nothing."""
        if self.status is Status.PENDING:
            self.status = Status.VOIDED
        if self.status is Status.AUTHORIZED:
            return Operation.VOID
        if self.status is Status.CAPTURED:
            return Operation.REFUND
        return None

    # ---------------------------------------------------------- what the provider answered

    def catch_up(self, charge: ChargeState) -> None:
        """Adopts what the provider did that we never recorded: an earlier attempt crashed after
        the provider's answer and before our commit. Records the events that attempt would have."""
        if self.status is Status.PENDING and charge.status in _HOLDS_OR_HELD:
            self.mark_authorized(charge.charge_id)
        if self.status is Status.AUTHORIZED and charge.status in (Status.CAPTURED, Status.REFUNDED):
            self.mark_captured()
        if self.status is Status.AUTHORIZED and charge.status is Status.VOIDED:
            self.mark_voided()
        if self.status is Status.CAPTURED and charge.status is Status.REFUNDED:
            self.mark_refunded()

    def mark_authorized(self, charge_id: str) -> None:
        self._expect(Status.PENDING)
        self.status, self.authorized, self.charge_id = Status.AUTHORIZED, self.amount.amount, charge_id
        self._record(PaymentAuthorized(self.order_id, self.amount))

    def mark_declined(self, reason: str) -> None:
        self._expect(Status.PENDING)
        self.status, self.decline_reason = Status.DECLINED, reason
        self._record(PaymentDeclined(self.order_id, self.amount, reason))

    def mark_captured(self) -> None:
        self._expect(Status.AUTHORIZED)
        self.status, self.captured = Status.CAPTURED, self.authorized
        self._record(PaymentCaptured(self.order_id, self._money(self.captured)))

    def mark_voided(self) -> None:
        self._expect(Status.AUTHORIZED)
        self.status = Status.VOIDED
        self._record(PaymentVoided(self.order_id, self._money(self.authorized)))

    def mark_refunded(self) -> None:
        self._expect(Status.CAPTURED)
        self.status, self.refunded = Status.REFUNDED, self.captured
        self._record(PaymentRefunded(self.order_id, self._money(self.refunded)))

    @property
    def kept(self) -> int:
        """What the shop keeps of this order: captured minus refunded."""
        return self.captured - self.refunded

    def _expect(self, status: Status) -> None:
        if self.status is not status:
            raise InvalidTransition(f"payment of order {self.order_id} is {self.status}, not {status}")

    def _money(self, amount: int) -> Money:
        return Money(amount, self.amount.currency)

    def _record(self, event: Event) -> None:
        if not 0 <= self.refunded <= self.captured <= self.authorized <= self.amount.amount:
            raise InvalidTransition(f"payment of order {self.order_id} would move money it does not hold")
        self.events.append(event)
