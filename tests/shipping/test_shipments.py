"""Shipping reacting to the order's events, and the dispatcher: each shipment booked once,
dispatched once, and never both dispatched and cancelled."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta
from typing import Any

import pytest

from chassis import tracing
from shipping import handlers
from shipping.carrier import CarrierAdapter
from shipping.dispatcher import Dispatcher
from tests.shipping.conftest import USER, Shipping, new_order_id, order_cancelled, order_confirmed

DISPATCH_HANDICAP = 0.002


class Crash(Exception):
    """The process dying before the transaction commits."""


class CrashingOutbox:
    """Raises where the event would be written: everything the transaction did is lost."""

    async def add(self, *_: Any, **__: Any) -> None:
        raise Crash


async def test_a_confirmed_order_books_a_shipment_with_the_carrier(shipping: Shipping) -> None:
    order_id = new_order_id()
    await shipping.deliver(order_confirmed(order_id))

    assert await shipping.status(order_id) == "created"
    assert await shipping.published(order_id) == [
        ("ShipmentCreated", {"order_id": order_id, "user_id": USER, "carrier": "parcelfast"})
    ]
    [consignment] = await shipping.consignments(order_id)
    assert consignment["status_code"] == "01"
    assert consignment["booking_record"][38:68].rstrip() == "ZOE ANGSTROM"


async def test_a_redelivered_confirmation_books_once(shipping: Shipping) -> None:
    order_id = new_order_id()
    event = order_confirmed(order_id)
    assert await shipping.deliver(event) is True
    assert await shipping.deliver(event) is False
    await shipping.deliver(order_confirmed(order_id))  # the same fact in a new event

    assert [name for name, _ in await shipping.published(order_id)] == ["ShipmentCreated"]
    assert len(await shipping.consignments(order_id)) == 1


async def test_a_crash_after_booking_reuses_the_carriers_booking(shipping: Shipping) -> None:
    order_id = new_order_id()
    event = order_confirmed(order_id)
    with pytest.raises(Crash):
        await shipping.deliver(event, outbox=CrashingOutbox())
    assert await shipping.status(order_id) is None

    await shipping.deliver(event)

    [consignment] = await shipping.consignments(order_id)
    assert consignment["status_code"] == "01"
    assert await shipping.status(order_id) == "created"


async def test_a_due_shipment_is_dispatched_with_the_carriers_tracking_number(shipping: Shipping) -> None:
    order_id = new_order_id()
    await shipping.deliver(order_confirmed(order_id))

    assert await shipping.dispatch_next() is True
    assert await shipping.dispatch_next() is False

    [consignment] = await shipping.consignments(order_id)
    assert consignment["status_code"] == "DP"
    assert await shipping.status(order_id) == "dispatched"
    assert (await shipping.published(order_id))[1:] == [
        (
            "ShipmentDispatched",
            {
                "order_id": order_id,
                "user_id": USER,
                "carrier": "parcelfast",
                "tracking_number": consignment["tracking_no"],
            },
        )
    ]


async def test_a_shipment_is_not_dispatched_before_the_delay(shipping: Shipping) -> None:
    shipping.dispatch_delay = timedelta(hours=1)
    order_id = new_order_id()
    await shipping.deliver(order_confirmed(order_id))

    assert await shipping.dispatch_next() is False
    assert await shipping.status(order_id) == "created"


async def test_a_crash_during_dispatch_neither_loses_nor_doubles_it(shipping: Shipping) -> None:
    order_id = new_order_id()
    await shipping.deliver(order_confirmed(order_id))

    with pytest.raises(Crash):  # the carrier dispatched; our record of it never committed
        await shipping.dispatch_next(outbox=CrashingOutbox())
    assert await shipping.status(order_id) == "created"

    assert await shipping.dispatch_next() is True

    [consignment] = await shipping.consignments(order_id)
    dispatched = [data for name, data in await shipping.published(order_id) if name == "ShipmentDispatched"]
    assert [data["tracking_number"] for data in dispatched] == [consignment["tracking_no"]]


async def test_a_cancel_after_a_lost_dispatch_records_the_dispatch(shipping: Shipping) -> None:
    order_id = new_order_id()
    await shipping.deliver(order_confirmed(order_id))
    with pytest.raises(Crash):
        await shipping.dispatch_next(outbox=CrashingOutbox())

    await shipping.deliver(order_cancelled(order_id))

    assert await shipping.status(order_id) == "dispatched"
    assert [name for name, _ in await shipping.published(order_id)] == ["ShipmentCreated", "ShipmentDispatched"]


async def test_a_cancel_before_dispatch_cancels_the_shipment_for_good(shipping: Shipping) -> None:
    order_id = new_order_id()
    await shipping.deliver(order_confirmed(order_id))

    await shipping.deliver(order_cancelled(order_id))
    assert await shipping.dispatch_next() is False

    assert await shipping.status(order_id) == "cancelled"
    assert [name for name, _ in await shipping.published(order_id)] == ["ShipmentCreated", "ShipmentCancelled"]
    [consignment] = await shipping.consignments(order_id)
    assert consignment["status_code"] == "CX"


async def test_a_cancel_after_dispatch_changes_nothing(shipping: Shipping) -> None:
    order_id = new_order_id()
    await shipping.deliver(order_confirmed(order_id))
    await shipping.dispatch_next()

    await shipping.deliver(order_cancelled(order_id))

    assert await shipping.status(order_id) == "dispatched"
    assert [name for name, _ in await shipping.published(order_id)] == ["ShipmentCreated", "ShipmentDispatched"]
    [consignment] = await shipping.consignments(order_id)
    assert consignment["status_code"] == "DP"


async def test_a_cancel_before_the_confirmation_leaves_a_tombstone(shipping: Shipping) -> None:
    order_id = new_order_id()
    await shipping.deliver(order_cancelled(order_id))
    await shipping.deliver(order_confirmed(order_id))

    assert await shipping.dispatch_next() is False
    assert await shipping.published(order_id) == []
    assert await shipping.consignments(order_id) == []


async def test_a_cancel_cancels_a_booking_a_crashed_confirmation_left_at_the_carrier(shipping: Shipping) -> None:
    order_id = new_order_id()
    with pytest.raises(Crash):
        await shipping.deliver(order_confirmed(order_id), outbox=CrashingOutbox())

    await shipping.deliver(order_cancelled(order_id))
    await shipping.deliver(order_confirmed(order_id))

    [consignment] = await shipping.consignments(order_id)
    assert consignment["status_code"] == "CX"
    assert await shipping.published(order_id) == []


async def test_cancel_and_dispatch_racing_never_both_win(shipping: Shipping) -> None:
    shipping.dispatch_delay = timedelta(hours=1)
    orders = [new_order_id() for _ in range(40)]
    for order_id in orders:
        await shipping.deliver(order_confirmed(order_id))

    async def after(delay: float, call: Any) -> Any:
        await asyncio.sleep(delay)
        return await call

    for order_id in orders:
        await shipping.fall_due(order_id)
        # A cancel has more to do before its UPDATE (the inbox claim, the order lock) than the
        # dispatcher before its claim: starting the dispatcher a little later evens the odds.
        await asyncio.gather(
            after(random.uniform(0, 0.006), shipping.deliver(order_cancelled(order_id))),
            after(random.uniform(0, 0.006) + DISPATCH_HANDICAP, shipping.dispatch_next()),
        )

    outcomes = []
    for order_id in orders:
        names = [name for name, _ in await shipping.published(order_id)][1:]
        status = await shipping.status(order_id)
        [consignment] = await shipping.consignments(order_id)
        assert names in (["ShipmentDispatched"], ["ShipmentCancelled"]), names
        assert status == {"ShipmentDispatched": "dispatched", "ShipmentCancelled": "cancelled"}[names[0]]
        assert consignment["status_code"] == {"dispatched": "DP", "cancelled": "CX"}[status]
        outcomes.append(status)
    # Both sides won some races: the test really raced them.
    assert set(outcomes) == {"dispatched", "cancelled"}


async def test_orders_cancel_of_a_booked_shipment_cancels_it_at_the_carrier(shipping: Shipping) -> None:
    order_id = new_order_id()
    await shipping.deliver(order_confirmed(order_id))

    shipment = await shipping.cancel_for_orders(order_id)

    assert (shipment.order_id, shipment.status, shipment.carrier) == (order_id, "cancelled", "parcelfast")
    assert await shipping.dispatch_next() is False
    assert [name for name, _ in await shipping.published(order_id)] == ["ShipmentCreated", "ShipmentCancelled"]
    [consignment] = await shipping.consignments(order_id)
    assert consignment["status_code"] == "CX"


async def test_orders_cancel_repeated_answers_cancelled_and_cancels_once(shipping: Shipping) -> None:
    order_id = new_order_id()
    await shipping.deliver(order_confirmed(order_id))
    await shipping.cancel_for_orders(order_id)

    again = await shipping.cancel_for_orders(order_id)
    await shipping.deliver(order_cancelled(order_id))  # orders' OrderCancelled follows its cancel

    assert again.status == "cancelled"
    assert [name for name, _ in await shipping.published(order_id)] == ["ShipmentCreated", "ShipmentCancelled"]


async def test_orders_cancel_before_the_confirmation_arrives_leaves_a_tombstone(shipping: Shipping) -> None:
    order_id = new_order_id()

    shipment = await shipping.cancel_for_orders(order_id, user_id="ada")
    await shipping.deliver(order_confirmed(order_id))

    assert (shipment.status, shipment.user_id, shipment.is_tombstone) == ("cancelled", "ada", True)
    assert await shipping.dispatch_next() is False
    # Announced, though no shipment existed: should orders lose its own cancel after this commit
    # (a crash, a cut deadline), the event still cancels the order, which would otherwise stay
    # confirmed with nothing to ship.
    assert await shipping.published(order_id) == [("ShipmentCancelled", {"order_id": order_id})]
    assert await shipping.consignments(order_id) == []


async def test_orders_cancel_whose_tombstone_was_lost_is_finished_by_the_late_confirmation(shipping: Shipping) -> None:
    """A crashed creation left a booking; orders' cancel cancelled it at the carrier, then lost its
    transaction, tombstone and all. The confirmation, redelivered, finds the booking cancelled:
    it must record and announce the cancel, not refuse the confirmation until it is dead-lettered."""
    order_id = new_order_id()
    with pytest.raises(Crash):
        await shipping.deliver(order_confirmed(order_id), outbox=CrashingOutbox())
    with pytest.raises(Crash):
        await shipping.cancel_for_orders(order_id, outbox=CrashingOutbox())
    [consignment] = await shipping.consignments(order_id)
    assert consignment["status_code"] == "CX"

    await shipping.deliver(order_confirmed(order_id))

    assert await shipping.status(order_id) == "cancelled"
    assert await shipping.published(order_id) == [("ShipmentCancelled", {"order_id": order_id})]
    assert await shipping.dispatch_next() is False


async def test_orders_cancel_after_dispatch_is_refused_and_changes_nothing(shipping: Shipping) -> None:
    order_id = new_order_id()
    await shipping.deliver(order_confirmed(order_id))
    await shipping.dispatch_next()

    with pytest.raises(handlers.ShipmentAlreadyDispatched):
        await shipping.cancel_for_orders(order_id)

    assert await shipping.status(order_id) == "dispatched"
    assert [name for name, _ in await shipping.published(order_id)] == ["ShipmentCreated", "ShipmentDispatched"]


async def test_orders_cancel_after_a_lost_dispatch_is_refused_and_records_the_dispatch(shipping: Shipping) -> None:
    order_id = new_order_id()
    await shipping.deliver(order_confirmed(order_id))
    with pytest.raises(Crash):  # the carrier dispatched; our record of it never committed
        await shipping.dispatch_next(outbox=CrashingOutbox())

    with pytest.raises(handlers.ShipmentAlreadyDispatched):
        await shipping.cancel_for_orders(order_id)

    assert await shipping.status(order_id) == "dispatched"
    assert [name for name, _ in await shipping.published(order_id)] == ["ShipmentCreated", "ShipmentDispatched"]


async def test_orders_cancel_and_dispatch_racing_give_one_answer_that_holds(shipping: Shipping) -> None:
    shipping.dispatch_delay = timedelta(hours=1)
    orders = [new_order_id() for _ in range(40)]
    for order_id in orders:
        await shipping.deliver(order_confirmed(order_id))

    async def cancel(order_id: str, delay: float) -> str:
        await asyncio.sleep(delay)
        try:
            return (await shipping.cancel_for_orders(order_id)).status
        except handlers.ShipmentAlreadyDispatched:
            return "refused"

    async def dispatch(delay: float) -> None:
        await asyncio.sleep(delay)
        await shipping.dispatch_next()

    answers = {}
    for order_id in orders:
        await shipping.fall_due(order_id)
        answers[order_id], _ = await asyncio.gather(
            cancel(order_id, random.uniform(0, 0.004)), dispatch(random.uniform(0, 0.004) + DISPATCH_HANDICAP)
        )

    for order_id, answer in answers.items():
        status = await shipping.status(order_id)
        names = [name for name, _ in await shipping.published(order_id)][1:]
        assert (answer, status, names) in (
            ("cancelled", "cancelled", ["ShipmentCancelled"]),
            ("refused", "dispatched", ["ShipmentDispatched"]),
        )
    assert set(answers.values()) == {"cancelled", "refused"}


async def test_two_dispatchers_dispatch_each_shipment_once(shipping: Shipping) -> None:
    orders = [new_order_id() for _ in range(20)]
    for order_id in orders:
        await shipping.deliver(order_confirmed(order_id))

    async def drain() -> None:
        while await shipping.dispatch_next():
            pass

    await asyncio.gather(drain(), drain(), drain())

    for order_id in orders:
        assert [name for name, _ in await shipping.published(order_id)] == ["ShipmentCreated", "ShipmentDispatched"]


async def test_the_dispatcher_worker_dispatches_when_due_and_stops_cleanly(shipping: Shipping) -> None:
    shipping.dispatch_delay = timedelta(seconds=0.3)
    order_id = new_order_id()
    await shipping.deliver(order_confirmed(order_id))
    dispatcher = Dispatcher(shipping.pool, carrier=shipping.carrier, outbox=shipping.outbox, poll_interval=0.05)

    await dispatcher.start()
    try:
        await asyncio.sleep(0.1)
        assert await shipping.status(order_id) == "created"
        async with asyncio.timeout(5):
            while await shipping.status(order_id) != "dispatched":  # noqa: ASYNC110 (polling the database)
                await asyncio.sleep(0.05)
    finally:
        await dispatcher.stop()


class RefusingCarrier(CarrierAdapter):
    async def dispatch(self, consignment_number: str) -> Any:
        raise OSError("carrier unreachable")


async def test_a_failed_dispatch_is_postponed_not_lost(shipping: Shipping) -> None:
    order_id = new_order_id()
    await shipping.deliver(order_confirmed(order_id))
    refusing = RefusingCarrier(shipping.fake)

    assert await handlers.dispatch_next(shipping.pool, carrier=refusing, outbox=shipping.outbox) is True
    assert await shipping.dispatch_next() is False  # backing off
    await shipping.fall_due(order_id)
    assert await shipping.dispatch_next() is True
    assert await shipping.status(order_id) == "dispatched"


async def test_a_cancel_lost_after_the_carrier_cancelled_is_recorded_by_the_dispatcher(shipping: Shipping) -> None:
    order_id = new_order_id()
    await shipping.deliver(order_confirmed(order_id))
    with pytest.raises(Crash):  # the carrier cancelled; our record of it never committed
        await shipping.cancel_for_orders(order_id, outbox=CrashingOutbox())
    assert await shipping.status(order_id) == "created"
    await shipping.fall_due(order_id)

    assert await shipping.dispatch_next() is True

    assert await shipping.status(order_id) == "cancelled"
    assert [name for name, _ in await shipping.published(order_id)] == ["ShipmentCreated", "ShipmentCancelled"]
    assert await shipping.dispatch_next() is False


async def test_the_dispatch_continues_the_trace_the_shipment_was_created_in(shipping: Shipping) -> None:
    """The dispatcher finds a due shipment by polling, with no trace of its own: without the stored
    trace, SHIPPED and everything after it would start a new trace, and a checkout be two."""
    tracing.configure("shipping")  # spans as in a service (a no-op if this process already has a provider)
    order_id = new_order_id()
    with tracing.tracer().start_as_current_span("checkout") as checkout:
        await shipping.deliver(order_confirmed(order_id))

    assert await shipping.dispatch_next() is True

    rows = await shipping.pool.fetch(
        "SELECT envelope FROM outbox WHERE envelope::jsonb->>'subject' = $1 ORDER BY id", order_id
    )
    traces = [json.loads(row["envelope"])["traceparent"].split("-")[1] for row in rows]
    assert traces == [f"{checkout.get_span_context().trace_id:032x}"] * 2  # ShipmentCreated, ShipmentDispatched
