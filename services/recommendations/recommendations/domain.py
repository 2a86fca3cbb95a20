"""What a recommendation is, without I/O: how big an answer may be, what one order teaches, and
how the products bought together, the product's category and the best sellers make one list."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_LIMIT = 4
"""What an unset limit means: the product page shows four."""
MAX_LIMIT = 20


class InvalidLimit(ValueError):
    pass


def answer_size(requested: int) -> int:
    """0 (unset) means the default; more than `MAX_LIMIT` is cut down to it."""
    if requested < 0:
        raise InvalidLimit("must be 0 (the default) or more")
    return min(requested or DEFAULT_LIMIT, MAX_LIMIT)


def units_per_product(items: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """An order's lines merged per product: one product on two lines was still bought once."""
    units: Counter[str] = Counter()
    for item in items:
        units[item["product_id"]] += item["quantity"]
    return dict(units)


def recommend(product_id: str, *sources: Iterable[str], limit: int) -> list[str]:
    """The candidates of each source in turn (bought together, then the same category, then the
    best sellers), each named once; never `product_id` itself, never more than `limit`."""
    picked = dict.fromkeys(other for source in sources for other in source if other != product_id)
    return list(picked)[:limit]
