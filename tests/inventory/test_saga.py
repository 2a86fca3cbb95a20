"""Inventory's part of the checkout saga, on a real database with real concurrent transactions."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chassis.messaging import Envelope
from inventory.domain import STARTER_STOCK
from tests.inventory.conftest import Inventory, cancelled, confirmed, new_id, placed


async def test_an_order_reserves_every_line_and_says_so(inventory: Inventory) -> None:
    cup, jug = new_id(), new_id()
    await inventory.set_stock(cup, 5)
    await inventory.set_stock(jug, 1)
    order = new_id()

    await inventory.deliver(placed(order, {cup: 2, jug: 1}))

    assert await inventory.stock(cup) == (3, 2, 0)
    assert await inventory.stock(jug) == (0, 1, 0)
    lines = sorted(
        [{"product_id": cup, "quantity": 2}, {"product_id": jug, "quantity": 1}], key=lambda line: line["product_id"]
    )
    assert await inventory.published(order) == [("StockReserved", {"order_id": order, "lines": lines})]


async def test_an_order_short_of_one_product_reserves_nothing_and_names_the_missing_ones(inventory: Inventory) -> None:
    cup, jug, unknown = new_id(), new_id(), new_id()
    await inventory.set_stock(cup, 5)
    await inventory.set_stock(jug, 1)
    order = new_id()

    await inventory.deliver(placed(order, {cup: 2, jug: 2, unknown: 1}))

    assert await inventory.stock(cup) == (5, 0, 0)
    assert await inventory.stock(jug) == (1, 0, 0)
    missing = sorted([jug, unknown])
    assert await inventory.published(order) == [("StockRejected", {"order_id": order, "missing_product_ids": missing})]


async def test_two_lines_of_one_product_are_reserved_together(inventory: Inventory) -> None:
    cup = new_id()
    await inventory.set_stock(cup, 3)
    event = placed(new_id(), {cup: 2})
    event.data["items"].append({**event.data["items"][0], "quantity": 2})

    await inventory.deliver(event)

    assert await inventory.stock(cup) == (3, 0, 0)
    assert (await inventory.published())[-1][0] == "StockRejected"


async def test_eight_buyers_racing_for_three_units_get_exactly_three(inventory: Inventory) -> None:
    cup = new_id()
    await inventory.set_stock(cup, 3)
    orders = [new_id() for _ in range(8)]

    await asyncio.gather(*(inventory.deliver(placed(order, {cup: 1})) for order in orders))

    assert await inventory.stock(cup) == (0, 3, 0)
    outcomes = [name for name, _ in await inventory.published()]
    assert sorted(outcomes) == ["StockRejected"] * 5 + ["StockReserved"] * 3


async def test_multi_line_orders_racing_never_hold_part_of_an_order(inventory: Inventory) -> None:
    cup, jug = new_id(), new_id()
    await inventory.set_stock(cup, 4)
    await inventory.set_stock(jug, 4)
    # Opposite line orders would deadlock if rows were locked in line order.
    orders = [(new_id(), {cup: 1, jug: 1} if i % 2 else {jug: 1, cup: 1}) for i in range(10)]

    await asyncio.gather(*(inventory.deliver(placed(order, lines)) for order, lines in orders))

    assert await inventory.stock(cup) == (0, 4, 0)
    assert await inventory.stock(jug) == (0, 4, 0)


async def test_confirmation_turns_the_reservation_into_a_sale(inventory: Inventory) -> None:
    cup, order = new_id(), new_id()
    await inventory.set_stock(cup, 3)
    await inventory.deliver(placed(order, {cup: 2}))

    await inventory.deliver(confirmed(order, {cup: 2}))

    assert await inventory.stock(cup) == (1, 0, 2)
    assert [name for name, _ in await inventory.published(order)] == ["StockReserved", "StockSold"]


async def test_cancelling_a_reserved_order_releases_its_units(inventory: Inventory) -> None:
    cup, order = new_id(), new_id()
    await inventory.set_stock(cup, 3)
    await inventory.deliver(placed(order, {cup: 2}))

    await inventory.deliver(cancelled(order, {cup: 2}, "payment_declined"))

    assert await inventory.stock(cup) == (3, 0, 0)
    assert [name for name, _ in await inventory.published(order)] == ["StockReserved", "StockReleased"]


async def test_cancelling_a_sold_order_puts_its_units_back_on_sale(inventory: Inventory) -> None:
    cup, order = new_id(), new_id()
    await inventory.set_stock(cup, 3)
    await inventory.deliver(placed(order, {cup: 2}))
    await inventory.deliver(confirmed(order, {cup: 2}))

    await inventory.deliver(cancelled(order, {cup: 2}))

    assert await inventory.stock(cup) == (3, 0, 0)
    assert [name for name, _ in await inventory.published(order)] == ["StockReserved", "StockSold", "StockRestocked"]


async def test_a_cancellation_arriving_before_the_order_leaves_nothing_reserved(inventory: Inventory) -> None:
    cup, order = new_id(), new_id()
    await inventory.set_stock(cup, 3)

    await inventory.deliver(cancelled(order, {cup: 2}))
    await inventory.deliver(placed(order, {cup: 2}))
    await inventory.deliver(confirmed(order, {cup: 2}))

    assert await inventory.stock(cup) == (3, 0, 0)
    assert await inventory.published(order) == []


async def test_a_redelivered_event_is_applied_once(inventory: Inventory) -> None:
    cup, order = new_id(), new_id()
    await inventory.set_stock(cup, 3)
    event = placed(order, {cup: 1})

    assert await inventory.deliver(event) is True
    assert await inventory.deliver(event) is False
    await asyncio.gather(*(inventory.deliver(event) for _ in range(4)))

    assert await inventory.stock(cup) == (2, 1, 0)
    assert len(await inventory.published(order)) == 1


async def test_a_second_event_with_the_same_meaning_changes_nothing(inventory: Inventory) -> None:
    cup, order = new_id(), new_id()
    await inventory.set_stock(cup, 3)
    for event in [
        placed(order, {cup: 1}),
        placed(order, {cup: 1}),
        confirmed(order, {cup: 1}),
        confirmed(order, {cup: 1}),
        cancelled(order, {cup: 1}),
        cancelled(order, {cup: 1}),
    ]:
        await inventory.deliver(event)

    assert await inventory.stock(cup) == (3, 0, 0)
    assert [name for name, _ in await inventory.published(order)] == ["StockReserved", "StockSold", "StockRestocked"]


async def test_setting_the_stock_leaves_reservations_alone_and_is_audited(inventory: Inventory) -> None:
    cup = new_id()
    await inventory.set_stock(cup, 5)
    await inventory.deliver(placed(new_id(), {cup: 2}))

    await inventory.set_stock(cup, 10)
    await inventory.set_stock(cup, 1)

    assert await inventory.stock(cup) == (1, 2, 0)
    [row] = await inventory.audit()
    assert row["adjusted"] == 3 == row["available"] + row["reserved"] + row["sold"]


async def test_a_negative_stock_is_refused(inventory: Inventory) -> None:
    with pytest.raises(ValueError):
        await inventory.set_stock(new_id(), -1)


operation = st.one_of(
    st.tuples(st.just("stock"), st.integers(0, 2), st.integers(0, 6)),
    st.tuples(st.sampled_from(["place", "confirm", "cancel"]), st.integers(0, 5), st.just(0)),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    operations=st.lists(operation, max_size=25),
    order_lines=st.lists(
        st.dictionaries(st.integers(0, 2), st.integers(1, 3), min_size=1, max_size=3), min_size=6, max_size=6
    ),
)
async def test_stock_is_conserved_and_never_negative_whatever_the_order_of_events(
    inventory: Inventory, operations: list[tuple[str, int, int]], order_lines: list[dict[int, int]]
) -> None:
    products = [new_id() for _ in range(3)]
    orders = [new_id() for _ in order_lines]
    lines = [{products[p]: q for p, q in chosen.items()} for chosen in order_lines]
    events = {"place": placed, "confirm": confirmed, "cancel": cancelled}
    for kind, index, quantity in operations:
        if kind == "stock":
            await inventory.set_stock(products[index], quantity)
        else:
            await inventory.deliver(events[kind](orders[index], lines[index]))

    rows = {row["product_id"]: row for row in await inventory.audit()}
    for product in products:
        if product not in rows:
            continue
        row = rows[product]
        assert min(row["available"], row["reserved"], row["sold"]) >= 0
        assert (row["available_moved"], row["reserved_moved"], row["sold_moved"]) == (
            row["available"],
            row["reserved"],
            row["sold"],
        )
        assert row["adjusted"] == row["available"] + row["reserved"] + row["sold"]
    held = {product: (0, 0) for product in products}
    for order, order_line in zip(orders, lines, strict=True):
        names = [name for name, _ in await inventory.published(order)]
        status = names[-1] if names else None
        for product, quantity in order_line.items():
            reserved, sold = held[product]
            held[product] = (
                reserved + quantity * (status == "StockReserved"),
                sold + quantity * (status == "StockSold"),
            )
    for product in products:
        if product in rows:
            assert held[product] == (rows[product]["reserved"], rows[product]["sold"])


def product_created(product_id: str, *, starter: bool) -> Envelope:
    return Envelope.new("catalog", "ProductCreated", {
        "product_id": product_id, "sku": "SKU-1", "name": "Lamp", "description": "", "categories": ["lighting"],
        "price": {"amount": 1250, "currency": "USD"}, "image_url": "", "starter": starter,
    }, subject=product_id)


async def test_a_starter_product_opens_with_stock_once_and_on_the_ledger(inventory: Inventory) -> None:
    product = new_id()
    event = product_created(product, starter=True)

    assert await inventory.deliver(event) is True
    assert await inventory.deliver(event) is False  # a redelivery is absorbed by the inbox
    await inventory.deliver(product_created(product, starter=True))  # even a second announcement adds nothing

    assert await inventory.stock(product) == (STARTER_STOCK, 0, 0)
    [row] = [row for row in await inventory.audit() if row["product_id"] == product]
    assert row["adjusted"] == row["available"] == STARTER_STOCK


async def test_an_admins_figure_set_first_stays_and_other_products_open_empty(inventory: Inventory) -> None:
    stocked_by_admin, created_by_admin = new_id(), new_id()
    await inventory.set_stock(stocked_by_admin, 3)

    await inventory.deliver(product_created(stocked_by_admin, starter=True))
    await inventory.deliver(product_created(created_by_admin, starter=False))

    assert await inventory.stock(stocked_by_admin) == (3, 0, 0)
    assert await inventory.stock(created_by_admin) == (0, 0, 0)
    assert created_by_admin not in {row["product_id"] for row in await inventory.audit()}
