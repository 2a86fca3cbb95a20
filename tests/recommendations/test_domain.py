"""The recommendation rules, without I/O."""

from __future__ import annotations

import pytest

from recommendations import domain


def test_an_unset_limit_means_four_and_a_large_one_is_capped_at_twenty() -> None:
    assert domain.answer_size(0) == 4
    assert domain.answer_size(7) == 7
    assert domain.answer_size(500) == 20


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(domain.InvalidLimit):
        domain.answer_size(-1)


def test_one_product_on_two_lines_is_one_product_with_their_units() -> None:
    items = [
        {"product_id": "cup", "quantity": 2},
        {"product_id": "jug", "quantity": 1},
        {"product_id": "cup", "quantity": 3},
    ]
    assert domain.units_per_product(items) == {"cup": 5, "jug": 1}


def test_each_source_fills_after_the_one_before_without_repeats_or_the_product() -> None:
    together = ["saucer", "spoon"]
    same_category = ["cup", "saucer", "mug"]
    best_sellers = ["cup", "spoon", "kettle", "tray"]
    assert domain.recommend("cup", together, same_category, best_sellers, limit=4) == ["saucer", "spoon", "mug", "kettle"]
    assert domain.recommend("cup", together, same_category, best_sellers, limit=1) == ["saucer"]
    assert domain.recommend("cup", limit=4) == []
