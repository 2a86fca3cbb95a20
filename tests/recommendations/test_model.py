"""The bought-together model learned from confirmed orders, on a real database."""

from __future__ import annotations

import asyncio

from recommendations import handlers
from tests.recommendations.conftest import Recommendations, cancelled, confirmed, new_id, product_created


async def test_products_bought_together_most_often_come_first(recommendations: Recommendations) -> None:
    await recommendations.buy("cup", "saucer", "spoon")
    await recommendations.buy("cup", "saucer")
    await recommendations.buy("cup", "saucer", "kettle")
    await recommendations.buy("cup", "kettle")

    assert await recommendations.recommend("cup") == ["saucer", "kettle", "spoon"]
    assert await recommendations.recommend("spoon") == ["cup", "saucer", "kettle"]


async def test_equally_often_bought_products_come_in_a_stable_order(recommendations: Recommendations) -> None:
    await recommendations.buy("cup", "tray", "jug")

    assert await recommendations.recommend("cup") == ["jug", "tray"]


async def test_a_product_nobody_bought_with_anything_gets_the_best_sellers_but_never_itself(
    recommendations: Recommendations,
) -> None:
    await recommendations.buy("kettle", quantity=5)
    await recommendations.buy("cup", quantity=3)
    await recommendations.buy("tray", quantity=1)

    assert await recommendations.recommend("cup") == ["kettle", "tray"]
    assert await recommendations.recommend("never-sold") == ["kettle", "cup", "tray"]


async def test_best_sellers_fill_up_a_short_list_after_the_products_bought_together(
    recommendations: Recommendations,
) -> None:
    await recommendations.buy("kettle", quantity=9)
    await recommendations.buy("jug", quantity=4)
    await recommendations.buy("cup", "saucer")

    assert await recommendations.recommend("cup", limit=3) == ["saucer", "kettle", "jug"]


async def test_the_answer_never_exceeds_the_limit(recommendations: Recommendations) -> None:
    await recommendations.buy("cup", *(f"p{n:02}" for n in range(30)))

    assert len(await recommendations.recommend("cup", limit=20)) == 20
    assert await recommendations.recommend("cup", limit=2) == ["p00", "p01"]


async def test_nothing_sold_and_nothing_known_answers_nothing(recommendations: Recommendations) -> None:
    assert await recommendations.recommend("cup") == []


async def test_a_cold_store_answers_the_products_of_the_same_category(recommendations: Recommendations) -> None:
    for product, category in [("cup", "kitchen"), ("jug", "kitchen"), ("tray", "kitchen"), ("atlas", "books")]:
        await recommendations.announce(product, category)

    assert await recommendations.recommend("cup") == ["jug", "tray"]
    assert await recommendations.recommend("atlas") == []


async def test_within_the_category_best_sellers_come_first_then_overall_best_sellers_fill(
    recommendations: Recommendations,
) -> None:
    await recommendations.announce("cup", "kitchen")
    await recommendations.announce("jug", "kitchen", "garden")
    await recommendations.announce("tray", "kitchen")
    await recommendations.announce("hose", "garden")
    await recommendations.buy("tray", quantity=3)
    await recommendations.buy("atlas", quantity=9)

    assert await recommendations.recommend("cup") == ["tray", "jug", "atlas"]
    assert await recommendations.recommend("jug") == ["tray", "cup", "hose", "atlas"]
    assert await recommendations.recommend("hose", limit=1) == ["jug"]


async def test_a_redelivered_product_is_learned_once(recommendations: Recommendations) -> None:
    announced = product_created("cup", "kitchen", "home")
    assert await recommendations.deliver(announced) is True
    assert await recommendations.deliver(announced) is False
    assert await recommendations.pool.fetchval("SELECT count(*) FROM product_categories") == 2


async def test_a_redelivered_order_is_learned_once(recommendations: Recommendations) -> None:
    order = confirmed({"cup": 1, "saucer": 1})
    assert await recommendations.deliver(order) is True
    assert await recommendations.deliver(order) is False
    await recommendations.buy("cup", "kettle")
    await recommendations.buy("cup", "kettle")

    assert await recommendations.recommend("cup") == ["kettle", "saucer"]
    counts = await recommendations.pool.fetch("SELECT product_id, units FROM sales ORDER BY product_id")
    assert [(row["product_id"], row["units"]) for row in counts] == [("cup", 3), ("kettle", 2), ("saucer", 1)]


async def test_concurrent_orders_lose_no_counts(recommendations: Recommendations) -> None:
    await asyncio.gather(*(recommendations.buy("cup", "saucer", "spoon") for _ in range(20)))

    pairs = await recommendations.pool.fetch("SELECT product_id, other_id, orders FROM bought_together")
    assert {row["orders"] for row in pairs} == {20}
    assert len(pairs) == 6


async def sales(recommendations: Recommendations) -> dict[str, int]:
    rows = await recommendations.pool.fetch("SELECT product_id, units FROM sales")
    return {row["product_id"]: row["units"] for row in rows}


async def test_an_order_the_customer_cancelled_is_taken_back_once(recommendations: Recommendations) -> None:
    await recommendations.buy("cup", "kettle")
    order_id = new_id()
    await recommendations.deliver(confirmed({"cup": 2, "saucer": 1}, order_id))
    assert await recommendations.recommend("cup") == ["kettle", "saucer"]

    await recommendations.deliver(cancelled({"cup": 2, "saucer": 1}, order_id))
    await recommendations.deliver(cancelled({"cup": 2, "saucer": 1}, order_id))  # the same fact, a new event

    assert await recommendations.recommend("cup") == ["kettle"]
    assert await sales(recommendations) == {"cup": 1, "kettle": 1}


async def test_a_cancellation_that_overtook_its_confirmation_leaves_nothing_to_learn(
    recommendations: Recommendations,
) -> None:
    order_id = new_id()
    await recommendations.deliver(cancelled({"cup": 1, "saucer": 1}, order_id))
    await recommendations.deliver(confirmed({"cup": 1, "saucer": 1}, order_id))  # retried, so late

    assert await recommendations.recommend("cup") == []
    assert await sales(recommendations) == {}


async def test_an_order_cancelled_before_it_was_confirmed_changes_no_count(recommendations: Recommendations) -> None:
    await recommendations.buy("cup", "saucer")
    await recommendations.deliver(cancelled({"cup": 1, "saucer": 1}, new_id(), reason="payment_declined"))

    assert await recommendations.recommend("cup") == ["saucer"]
    assert await sales(recommendations) == {"cup": 1, "saucer": 1}


async def test_confirmations_and_cancellations_at_once_leave_exactly_the_orders_kept(
    recommendations: Recommendations,
) -> None:
    lines = {"cup": 1, "saucer": 2, "spoon": 1}
    orders = [new_id() for _ in range(16)]
    await asyncio.gather(*(recommendations.deliver(confirmed(lines, order_id)) for order_id in orders))
    await asyncio.gather(
        *(recommendations.deliver(cancelled(lines, order_id)) for order_id in orders[::2]),
        *(recommendations.buy("cup", "spoon") for _ in range(4)),
    )

    assert await sales(recommendations) == {"cup": 12, "saucer": 16, "spoon": 12}
    pairs = await recommendations.pool.fetch("SELECT product_id, other_id, orders FROM bought_together")
    assert {(row["product_id"], row["other_id"]): row["orders"] for row in pairs} == {
        ("cup", "saucer"): 8, ("saucer", "cup"): 8, ("saucer", "spoon"): 8, ("spoon", "saucer"): 8,
        ("cup", "spoon"): 12, ("spoon", "cup"): 12,
    }


async def test_an_orders_record_is_forgotten_once_its_events_cannot_come_back(recommendations: Recommendations) -> None:
    await recommendations.buy("cup")
    await recommendations.pool.execute("UPDATE learned_orders SET recorded_at = now() - interval '36 days'")
    await recommendations.buy("saucer")

    assert await handlers.forget_old_orders(recommendations.pool) == 1
    assert await recommendations.pool.fetchval("SELECT count(*) FROM learned_orders") == 1
