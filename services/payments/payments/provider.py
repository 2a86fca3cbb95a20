"""The anti-corruption layer: the only code that knows the payment provider's model.

Ours: integer minor units, upper-case ISO currencies, statuses pending/authorized/captured/...
and decline reasons card_declined, insufficient_funds, invalid_token. The provider's: decimal
strings in major units, lower-case currencies, `requires_capture`/`succeeded`/`canceled`/`failed`
charges and `{"error": {...}}` answers. Nothing of the provider's leaks past this module.

Every write carries the idempotency key `<order_id>:<operation>`: one order has at most one
authorization, one capture, one void and one refund at the provider, however often we retry.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from payments.domain import ChargeState, Money, Operation, Status
from payments.provider_fake import Json, PaymentProviderFake, ProviderError

# ISO 4217 minor-unit exponents that are not 2.
_EXPONENTS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}
_DECLINE_REASONS = {"generic_decline": "card_declined", "insufficient_funds": "insufficient_funds"}


@dataclass(frozen=True)
class Authorized:
    charge_id: str


@dataclass(frozen=True)
class Declined:
    reason: str


class ProviderRefused(Exception):
    """The provider refused an operation our state says is valid: retried, then dead-lettered."""


class PaymentProvider(Protocol):
    async def authorize(self, order_id: str, amount: Money, token: str) -> Authorized | Declined: ...
    async def capture(self, order_id: str, charge_id: str, amount: Money) -> None: ...
    async def void(self, order_id: str, charge_id: str) -> None: ...
    async def refund(self, order_id: str, charge_id: str, amount: Money) -> None: ...
    async def charge_of(self, order_id: str) -> ChargeState | None: ...


def idempotency_key(order_id: str, operation: Operation) -> str:
    return f"{order_id}:{operation}"


def to_major_units(money: Money) -> str:
    exponent = _EXPONENTS.get(money.currency, 2)
    return f"{Decimal(money.amount).scaleb(-exponent):.{exponent}f}"


def to_minor_units(amount: str, currency: str) -> int:
    minor = Decimal(amount).scaleb(_EXPONENTS.get(currency.upper(), 2))
    if minor != minor.to_integral_value():
        raise ProviderRefused(f"{amount} {currency} is not a whole number of minor units")
    return int(minor)


class ProviderAdapter:
    """Our `PaymentProvider` over the provider's API."""

    def __init__(self, provider: PaymentProviderFake):
        self._provider = provider

    async def authorize(self, order_id: str, amount: Money, token: str) -> Authorized | Declined:
        try:
            charge = await self._provider.create_charge(
                amount=to_major_units(amount),
                currency=amount.currency.lower(),
                source=token,
                capture=False,
                metadata={"order_id": order_id},
                idempotency_key=idempotency_key(order_id, Operation.AUTHORIZE),
            )
        except ProviderError as error:
            if error.http_status >= 500 or error.error.get("type") == "idempotency_error":
                raise ProviderRefused(str(error)) from None
            return Declined(_decline_reason(error))
        self._expect(charge, "requires_capture", amount, "amount")
        return Authorized(charge["id"])

    async def capture(self, order_id: str, charge_id: str, amount: Money) -> None:
        charge = await self._call(
            self._provider.capture_charge(charge_id, idempotency_key=idempotency_key(order_id, Operation.CAPTURE))
        )
        self._expect(charge, "succeeded", amount, "amount_captured")

    async def void(self, order_id: str, charge_id: str) -> None:
        charge = await self._call(
            self._provider.cancel_charge(charge_id, idempotency_key=idempotency_key(order_id, Operation.VOID))
        )
        if charge["status"] != "canceled":
            raise ProviderRefused(f"charge {charge_id} is {charge['status']} after a void")

    async def refund(self, order_id: str, charge_id: str, amount: Money) -> None:
        refund = await self._call(
            self._provider.create_refund(
                charge=charge_id,
                amount=to_major_units(amount),
                idempotency_key=idempotency_key(order_id, Operation.REFUND),
            )
        )
        if refund["status"] != "succeeded" or to_minor_units(refund["amount"], refund["currency"]) != amount.amount:
            raise ProviderRefused(f"refund of charge {charge_id} is {refund['status']} for {refund['amount']}")

    async def charge_of(self, order_id: str) -> ChargeState | None:
        """The provider's charge for the order as it stands now, if it made one."""
        charges = (await self._call(self._provider.list_charges(metadata={"order_id": order_id})))["data"]
        if len(charges) > 1:
            raise ProviderRefused(f"the provider holds {len(charges)} charges for order {order_id}")
        return ChargeState(charges[0]["id"], _status(charges[0])) if charges else None

    @staticmethod
    async def _call(request: Awaitable[Json]) -> Json:
        try:
            return await request
        except ProviderError as error:
            raise ProviderRefused(str(error)) from None

    @staticmethod
    def _expect(charge: Json, status: str, amount: Money, field: str) -> None:
        if charge["status"] != status or to_minor_units(charge[field], charge["currency"]) != amount.amount:
            raise ProviderRefused(
                f"charge {charge['id']} is {charge['status']} for {charge[field]}, "
                f"expected {status} for {to_major_units(amount)}"
            )


def _status(charge: Json) -> Status:
    if charge["status"] == "succeeded":
        return Status.REFUNDED if charge["refunded"] else Status.CAPTURED
    return {"requires_capture": Status.AUTHORIZED, "canceled": Status.VOIDED, "failed": Status.DECLINED}[
        charge["status"]
    ]


def _decline_reason(error: ProviderError) -> str:
    """A refusal to authorize is a decline: the saga cancels the order rather than retry forever."""
    if error.error.get("type") == "card_error":
        return _DECLINE_REASONS.get(error.error.get("decline_code", ""), "card_declined")
    if error.code == "resource_missing" and error.error.get("param") == "source":
        return "invalid_token"
    return error.code or "provider_error"
