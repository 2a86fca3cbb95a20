"""The projections behind the sales report, from events delivered through the real inbox."""

from __future__ import annotations

import random

import pytest

from analytics.handlers import Unreportable
from tests.analytics.conftest import (
    HISTORY_FIGURES,
    Analytics,
    cancelled,
    captured,
    confirmed,
    history,
    new_id,
    product_created,
    refunded,
)


async def test_the_report_adds_up_a_shops_history(analytics: Analytics) -> None:
    await analytics.deliver(*history())

    assert await analytics.report() == HISTORY_FIGURES


async def test_the_same_history_in_any_order_gives_the_same_report(analytics: Analytics) -> None:
    events = history()
    random.Random(6).shuffle(events)
    await analytics.deliver(*events)

    report = await analytics.report()
    # Shuffled, the catalog's name may come last in event time order too: names are compared apart.
    assert {**report, "top_products": [(p, u) for p, _, u in report["top_products"]]} == {
        **HISTORY_FIGURES,
        "top_products": [(p, u) for p, _, u in HISTORY_FIGURES["top_products"]],
    }


async def test_a_redelivered_event_counts_once(analytics: Analytics) -> None:
    order = new_id()
    events = [confirmed(order, {"cup": 2}), captured(order, 200)]
    assert await analytics.deliver(*events) == [True, True]
    assert await analytics.deliver(*events) == [False, False]

    report = await analytics.report()
    assert (report["orders_confirmed"], report["revenue"], report["top_products"]) == (
        1,
        (200, "USD"),
        [("cup", "Product cup", 2)],
    )


async def test_an_order_cancelled_after_confirmation_leaves_the_top_products_but_stays_confirmed(
    analytics: Analytics,
) -> None:
    order = new_id()
    await analytics.deliver(confirmed(order, {"cup": 2}), captured(order, 200))
    assert (await analytics.report())["top_products"] == [("cup", "Product cup", 2)]

    await analytics.deliver(cancelled(order, {"cup": 2}), refunded(order, 200))

    report = await analytics.report()
    assert (report["orders_confirmed"], report["orders_cancelled"], report["top_products"]) == (1, 1, [])
    assert (report["revenue"], report["refunded"]) == ((200, "USD"), (200, "USD"))


async def test_the_top_products_are_the_five_with_most_units_ties_by_product_id(analytics: Analytics) -> None:
    lines = {"f": 1, "e": 2, "d": 3, "c": 3, "b": 5, "a": 1}
    await analytics.deliver(confirmed(new_id(), lines), confirmed(new_id(), {"f": 1}))

    top = (await analytics.report())["top_products"]
    assert [(product, units) for product, _, units in top] == [("b", 5), ("c", 3), ("d", 3), ("e", 2), ("f", 2)]


async def test_a_product_is_named_by_its_latest_description(analytics: Analytics) -> None:
    described_earlier = product_created("cup", "Espresso cup, blue")
    order = confirmed(new_id(), {"cup": 1})

    await analytics.deliver(order, described_earlier)
    assert (await analytics.report())["top_products"] == [("cup", "Product cup", 1)]

    await analytics.deliver(product_created("cup", "Espresso cup, red"))
    assert (await analytics.report())["top_products"] == [("cup", "Espresso cup, red", 1)]


async def test_money_in_another_currency_is_refused_and_nothing_is_recorded(analytics: Analytics) -> None:
    with pytest.raises(Unreportable):
        await analytics.deliver(captured(new_id(), 100, currency="EUR"))

    assert (await analytics.report())["revenue"] == (0, "USD")
    assert await analytics.pool.fetchval("SELECT count(*) FROM inbox") == 0
