"""The anti-corruption layer: the only code that knows the carrier's model.

Ours: an order id, a shipping address as the order carries it, statuses created / dispatched /
cancelled, a tracking number. The carrier's: fixed-width upper-case ASCII records in, comma-packed
lines out, consignment numbers, status codes `01`/`DP`/`CX` and `ER,<code>,<text>` errors.
Nothing of the carrier's leaks past this module except the consignment number, which shipping
stores as an opaque handle to address the carrier again.

Every request is safe to repeat: the carrier answers a booking of a reference it holds with that
booking, and a dispatch or cancel of a consignment already in that state with its state.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Protocol

from shipping.carrier_fake import BOOKING_LAYOUT, CONSIGNMENT_WIDTH, REF_WIDTH

CARRIER = "parcelfast"
STATUSES = {"01": "created", "DP": "dispatched", "CX": "cancelled"}


@dataclass(frozen=True)
class Consignment:
    """The carrier's booking, in our words."""

    number: str
    status: str
    tracking_number: str | None


class CarrierRefused(Exception):
    """The carrier answered with an error record (`code` is its own, e.g. `E07`)."""

    def __init__(self, code: str, text: str):
        super().__init__(f"carrier error {code}: {text}")
        self.code = code
        self.text = text


class AlreadyDispatched(CarrierRefused):
    """A cancel came too late: the parcel has left (the carrier's E07)."""


class ConsignmentCancelled(CarrierRefused):
    """A dispatch of a consignment cancelled at the carrier (its E08)."""


_ERRORS: dict[str, type[CarrierRefused]] = {"E07": AlreadyDispatched, "E08": ConsignmentCancelled}


class Transmitter(Protocol):
    async def transmit(self, line: str) -> str: ...


def legacy_text(value: str, width: int) -> str:
    """Our text as the carrier's field: ASCII (accents dropped), upper case, cut and padded to `width`."""
    ascii_only = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return " ".join(ascii_only.upper().split())[:width].ljust(width)


def booking_record(order_id: str, address: dict[str, Any]) -> str:
    """The `BK` record booking a parcel for the order to its shipping address."""
    if len(order_id) > REF_WIDTH:
        raise ValueError(f"order id {order_id!r} is longer than the carrier's reference field")
    fields = {
        "customer_ref": order_id,
        "name": address["name"],
        "line1": address["line1"],
        "line2": address.get("line2") or "",
        "city": address["city"],
        "postcode": address["postal_code"],
        "country": address["country"],
    }
    return "BK" + "".join(legacy_text(fields[name], width) for name, width in BOOKING_LAYOUT)


def reference_field(order_id: str) -> str:
    return legacy_text(order_id, REF_WIDTH)


def parse_reply(line: str) -> Consignment:
    """A status line, or CarrierRefused for an error line."""
    fields = line.strip().split(",")
    if fields[0] == "ER":
        code, text = [*fields, "", ""][1:3]
        raise _ERRORS.get(code, CarrierRefused)(code, text)
    if fields[0] not in STATUSES or len(fields) != 4:
        raise CarrierRefused("??", f"unreadable answer {line!r}")
    code, number, tracking, _changed = fields
    return Consignment(number=number, status=STATUSES[code], tracking_number=tracking or None)


class CarrierAdapter:
    """Book, dispatch and cancel in our terms; `name` is the carrier as our events name it."""

    name = CARRIER

    def __init__(self, carrier: Transmitter):
        self._carrier = carrier

    async def book(self, order_id: str, address: dict[str, Any]) -> Consignment:
        return await self._send(booking_record(order_id, address))

    async def dispatch(self, consignment_number: str) -> Consignment:
        return await self._send("DP" + _consignment_field(consignment_number))

    async def cancel(self, consignment_number: str) -> Consignment:
        """Raises AlreadyDispatched when the parcel has left."""
        return await self._send("CX" + _consignment_field(consignment_number))

    async def find_booking(self, order_id: str) -> Consignment | None:
        """The order's booking, if the carrier holds one (after a crash that lost our record of it)."""
        try:
            return await self._send("EQ" + reference_field(order_id))
        except CarrierRefused as error:
            if error.code == "E04":
                return None
            raise

    async def _send(self, line: str) -> Consignment:
        return parse_reply(await self._carrier.transmit(line))


def _consignment_field(number: str) -> str:
    if not (number.isdigit() and len(number) == CONSIGNMENT_WIDTH):
        raise ValueError(f"{number!r} is not a consignment number")
    return number
