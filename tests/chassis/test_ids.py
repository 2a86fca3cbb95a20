import uuid

import pytest

from chassis.ids import parse_id

ID = "6b1f0d3e-9a47-4c1e-8f3a-2d5c7e9b1a40"


def test_an_id_in_agoras_spelling_is_its_uuid() -> None:
    assert parse_id(ID) == uuid.UUID(ID)
    fresh = str(uuid.uuid4())
    assert parse_id(fresh) == uuid.UUID(fresh)


@pytest.mark.parametrize(
    "spelling",
    [ID.upper(), f"{{{ID}}}", f"urn:uuid:{ID}", ID.replace("-", ""), f" {ID}", f"{ID}\n", "not-an-id", ""],
)
def test_any_other_spelling_names_nothing(spelling: str) -> None:
    assert parse_id(spelling) is None
