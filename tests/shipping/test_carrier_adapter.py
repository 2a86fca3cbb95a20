"""The anti-corruption layer's translations, without the carrier: records out, answers in."""

from __future__ import annotations

import pytest

from shipping.carrier import (
    AlreadyDispatched,
    CarrierRefused,
    Consignment,
    booking_record,
    legacy_text,
    parse_reply,
)
from shipping.carrier_fake import BOOKING_LENGTH, tracking_number

ORDER_ID = "7f9c2ba4-e88f-4e2b-9a4c-1c8d2f6b3e01"
ADDRESS = {
    "name": "Zoë Ångström",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


def test_a_booking_is_one_fixed_width_upper_case_ascii_record() -> None:
    record = booking_record(ORDER_ID, ADDRESS)

    assert len(record) == BOOKING_LENGTH
    assert record.isascii() and record == record.upper()
    assert record[:2] == "BK"
    assert record[2:38] == ORDER_ID.upper()
    assert record[38:68] == "ZOE ANGSTROM".ljust(30)
    assert record[68:98] == "12 ST JAMES'S SQUARE".ljust(30)
    assert record[98:128] == " " * 30  # no line2
    assert record[128:153] == "LONDON".ljust(25)
    assert record[153:163] == "SW1Y 4JH".ljust(10)
    assert record[163:165] == "GB"


def test_long_text_is_cut_to_the_field_and_whitespace_collapsed() -> None:
    assert legacy_text("  Flat 4,\n  The   Old Rectory, Long Lane  ", 20) == "FLAT 4, THE OLD RECT"
    assert legacy_text("Łódź", 6) == "ODZ   "  # letters without an ASCII decomposition are dropped


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("01,0000001042,,20261123T162700", Consignment("0000001042", "created", None)),
        ("DP,0000001042,PF000010429,20261123T162703", Consignment("0000001042", "dispatched", "PF000010429")),
        ("CX,0000001042,,20261123T162701", Consignment("0000001042", "cancelled", None)),
    ],
)
def test_the_carriers_status_codes_become_our_statuses(line: str, expected: Consignment) -> None:
    assert parse_reply(line) == expected


def test_an_error_record_is_refused_with_the_carriers_code() -> None:
    with pytest.raises(CarrierRefused) as refused:
        parse_reply("ER,E04,CONSIGNMENT NOT FOUND")
    assert (refused.value.code, refused.value.text) == ("E04", "CONSIGNMENT NOT FOUND")
    with pytest.raises(AlreadyDispatched):
        parse_reply("ER,E07,ALREADY DISPATCHED PF000010429")


@pytest.mark.parametrize("line", ["", "ZZ,1,2,3", "01,0000001042", "garbage"])
def test_an_unreadable_answer_is_refused(line: str) -> None:
    with pytest.raises(CarrierRefused):
        parse_reply(line)


def test_tracking_numbers_carry_the_s10_check_digit() -> None:
    # The UPU S10 standard's own example: serial 47312482 has check digit 9 (AA473124829GB).
    assert tracking_number(47312482) == "PF473124829"
    assert all(len(tracking_number(n)) == 11 for n in (0, 1, 99999999))
