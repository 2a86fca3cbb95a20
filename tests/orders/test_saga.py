"""The saga's events applied by orders' handlers inside real inbox transactions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from chassis import messaging
from orders import domain, handlers, repository
from orders.domain import Address, Line, Money, Order, PlaceOrder
from tests.orders.conftest import published

USER = "0b6f8a52-3c1d-4f0e-8d7a-5e2b9c4a1f10"
ADDRESS = Address("Ada Lovelace", "12 St James's Square", "", "London", "SW1Y 4JH", "GB")
LINES = (Line(str(uuid.uuid4()), "Espresso cup", 2, Money(1250, "USD")),)


def clock() -> datetime:
    return datetime.now(UTC)


async def placed_order(pool: asyncpg.Pool) -> str:
    command = PlaceOrder(user_id=USER, idempotency_key="k", shipping_address=ADDRESS, payment_token="tok_visa")
    order = Order.place(str(uuid.uuid4()), command, LINES, clock())
    async with pool.acquire() as conn:
        await repository.add_order(conn, order)
    return order.id


def answer(name: str, order_id: str) -> messaging.Envelope:
    """An event as its producer would publish it (validated against its schema)."""
    data: dict[str, Any] = {
        "StockReserved": {"order_id": order_id, "lines": [{"product_id": LINES[0].product_id, "quantity": 2}]},
        "StockRejected": {"order_id": order_id, "missing_product_ids": [LINES[0].product_id]},
        "PaymentAuthorized": {"order_id": order_id, "amount": {"amount": 2500, "currency": "USD"}},
        "PaymentDeclined": {
            "order_id": order_id,
            "amount": {"amount": 2500, "currency": "USD"},
            "reason": "card_declined",
        },
        "ShipmentDispatched": {
            "order_id": order_id,
            "user_id": USER,
            "carrier": "parcelfast",
            "tracking_number": "PF1",
        },
        "ShipmentCancelled": {"order_id": order_id},
    }[name]
    producer = {"Stock": "inventory", "Payme": "payments", "Shipm": "shipping"}[name[:5]]
    return messaging.Envelope.new(producer, name, data)


async def deliver(pool: asyncpg.Pool, outbox: messaging.Outbox, event: messaging.Envelope) -> None:
    """What orders' consumer does with one delivery: claim it in the inbox, handle it, commit."""
    handler = handlers.SUBSCRIPTIONS[event.type]
    await messaging.PostgresInbox(pool).apply_once(
        "orders", event.id, lambda conn: handler(event, conn, outbox=outbox, clock=clock)
    )


class ShippingNotAsked:
    """Shipping, for cancels that must never reach it."""

    async def cancel_shipment(self, order_id: str) -> None:
        raise AssertionError(f"shipping was asked to cancel order {order_id}")


class ShippingCancels:
    """Shipping that cancelled the parcel before it left."""

    async def cancel_shipment(self, order_id: str) -> None:
        return None


async def cancel(pool: asyncpg.Pool, outbox: messaging.Outbox, order_id: str) -> None:
    command = domain.CancelOrder(USER, order_id)
    await handlers.cancel_order(command, pool=pool, shipping=ShippingNotAsked(), outbox=outbox, clock=clock)


async def stored(pool: asyncpg.Pool, order_id: str) -> Order:
    order = await repository.order_of(pool, USER, order_id)
    assert order is not None
    return order


async def test_reserved_and_authorized_confirm_and_publish_order_confirmed(store, outbox):
    order_id = await placed_order(store)

    await deliver(store, outbox, answer("PaymentAuthorized", order_id))
    assert (await stored(store, order_id)).status == "PENDING"
    await deliver(store, outbox, answer("StockReserved", order_id))

    order = await stored(store, order_id)
    assert order.status == "CONFIRMED"
    assert [change.status for change in order.history] == ["PENDING", "CONFIRMED"]
    assert await published(store, "OrderConfirmed") == [
        {
            "order_id": order_id,
            "user_id": USER,
            "items": [
                {
                    "product_id": LINES[0].product_id,
                    "name": "Espresso cup",
                    "quantity": 2,
                    "unit_price": {"amount": 1250, "currency": "USD"},
                }
            ],
            "total": {"amount": 2500, "currency": "USD"},
            "shipping_address": {
                "name": "Ada Lovelace",
                "line1": "12 St James's Square",
                "line2": "",
                "city": "London",
                "postal_code": "SW1Y 4JH",
                "country": "GB",
            },
        }
    ]


@pytest.mark.parametrize(
    ("failure", "reason"), [("StockRejected", "out_of_stock"), ("PaymentDeclined", "payment_declined")]
)
async def test_a_failure_cancels_with_its_reason(store, outbox, failure, reason):
    order_id = await placed_order(store)

    await deliver(store, outbox, answer(failure, order_id))

    order = await stored(store, order_id)
    assert (order.status, order.status_reason) == ("CANCELLED", reason)
    cancelled = await published(store, "OrderCancelled")
    assert [(event["order_id"], event["reason"], event["total"]["amount"]) for event in cancelled] == [
        (order_id, reason, 2500)
    ]


async def test_a_redelivered_event_is_applied_once(store, outbox):
    order_id = await placed_order(store)
    rejected = answer("StockRejected", order_id)

    await deliver(store, outbox, rejected)
    await deliver(store, outbox, rejected)

    assert len(await published(store, "OrderCancelled")) == 1
    assert await store.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", uuid.UUID(rejected.id)) == 1


async def test_dispatch_ships_a_confirmed_order_and_publishes_order_shipped(store, outbox):
    order_id = await placed_order(store)
    for name in ("StockReserved", "PaymentAuthorized", "ShipmentDispatched", "ShipmentDispatched"):
        await deliver(store, outbox, answer(name, order_id))

    order = await stored(store, order_id)
    assert order.status == "SHIPPED"
    assert [change.status for change in order.history] == ["PENDING", "CONFIRMED", "SHIPPED"]
    assert await published(store, "OrderShipped") == [
        {"order_id": order_id, "user_id": USER, "carrier": "parcelfast", "tracking_number": "PF1"}
    ]


async def test_a_dispatch_of_a_cancelled_order_changes_nothing_and_is_logged_as_an_error(store, outbox):
    order_id = await placed_order(store)
    await deliver(store, outbox, answer("PaymentDeclined", order_id))

    with capture_logs() as logs:
        await deliver(store, outbox, answer("ShipmentDispatched", order_id))

    assert (await stored(store, order_id)).status == "CANCELLED"
    assert await published(store, "OrderShipped") == []
    assert [(entry["event"], entry["log_level"]) for entry in logs if entry["log_level"] == "error"] == [
        ("cancelled_order_dispatched", "error")
    ]


async def test_a_shipment_cancelled_whose_order_cancel_was_lost_cancels_the_order_once(store, outbox):
    order_id = await placed_order(store)
    for name in ("StockReserved", "PaymentAuthorized", "ShipmentCancelled", "ShipmentCancelled"):
        await deliver(store, outbox, answer(name, order_id))

    order = await stored(store, order_id)
    assert (order.status, order.status_reason) == ("CANCELLED", "customer_request")
    assert [event["reason"] for event in await published(store, "OrderCancelled")] == ["customer_request"]


async def test_a_shipment_cancelled_after_the_customer_cancel_changes_nothing(store, outbox):
    order_id = await placed_order(store)
    for name in ("StockReserved", "PaymentAuthorized"):
        await deliver(store, outbox, answer(name, order_id))
    await handlers.cancel_order(
        domain.CancelOrder(USER, order_id), pool=store, shipping=ShippingCancels(), outbox=outbox, clock=clock
    )

    await deliver(store, outbox, answer("ShipmentCancelled", order_id))

    assert len(await published(store, "OrderCancelled")) == 1


async def test_an_event_for_an_unknown_order_fails_so_it_is_retried_then_dead_lettered(store, outbox):
    event = answer("StockReserved", str(uuid.uuid4()))

    with pytest.raises(domain.OrderNotFound):
        await deliver(store, outbox, event)

    assert await store.fetchval("SELECT count(*) FROM inbox") == 0


async def test_a_customer_cancel_then_late_answers_publish_nothing_more(store, outbox):
    order_id = await placed_order(store)
    await cancel(store, outbox, order_id)

    await deliver(store, outbox, answer("StockReserved", order_id))
    await deliver(store, outbox, answer("PaymentAuthorized", order_id))

    order = await stored(store, order_id)
    assert (order.status, order.status_reason) == ("CANCELLED", "customer_request")
    assert [event["reason"] for event in await published(store, "OrderCancelled")] == ["customer_request"]
    assert await published(store, "OrderConfirmed") == []


async def test_a_customer_cannot_cancel_a_shipped_order(store, outbox):
    order_id = await placed_order(store)
    for name in ("StockReserved", "PaymentAuthorized", "ShipmentDispatched"):
        await deliver(store, outbox, answer(name, order_id))

    with pytest.raises(domain.InvalidTransition):
        await cancel(store, outbox, order_id)

    assert (await stored(store, order_id)).status == "SHIPPED"
    assert await published(store, "OrderCancelled") == []


@st.composite
def arrivals(draw: st.DrawFn) -> list[tuple[str, int]]:
    """Inventory's and payments' answers in any order, some redelivered (same event id) and some
    published twice (a new id), with an optional dispatch that can only follow a confirmation."""
    stock = draw(st.sampled_from(["StockReserved", "StockRejected"]))
    payment = draw(st.sampled_from(["PaymentAuthorized", "PaymentDeclined"]))
    copies = [(stock, 0), (payment, 0)]
    copies += [
        (name, draw(st.integers(0, 1))) for name in draw(st.lists(st.sampled_from([stock, payment]), max_size=3))
    ]
    return draw(st.permutations(copies))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=arrivals())
async def test_any_arrival_order_with_duplicates_ends_in_one_decision(store, outbox, sequence):
    order_id = await placed_order(store)
    events: dict[tuple[str, int], messaging.Envelope] = {}
    for name, copy in sequence:
        await deliver(store, outbox, events.setdefault((name, copy), answer(name, order_id)))

    order = await stored(store, order_id)
    names = [name for name, _ in sequence]
    failures = [name for name in names if name in ("StockRejected", "PaymentDeclined")]
    confirmed = await published(store, "OrderConfirmed")
    cancelled = await published(store, "OrderCancelled")
    mine = [e for e in confirmed + cancelled if e["order_id"] == order_id]
    assert len(mine) == 1
    if failures:
        expected = "out_of_stock" if failures[0] == "StockRejected" else "payment_declined"
        assert (order.status, order.status_reason) == ("CANCELLED", expected)
        assert mine[0]["reason"] == expected
    else:
        assert order.status == "CONFIRMED"
        assert "shipping_address" in mine[0]
    assert len(order.history) == 2


async def test_idempotency_keys_are_forgotten_only_after_their_retention(store: asyncpg.Pool) -> None:
    order_id = await placed_order(store)
    async with store.acquire() as conn:
        await repository.claim_key(conn, USER, "old", "fingerprint", order_id)
        await repository.claim_key(conn, USER, "recent", "fingerprint", order_id)
        await conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '49 hours' WHERE key = 'old'")

    assert await repository.forget_keys_older_than(store, 48) == 1
    remaining = await store.fetch("SELECT key FROM idempotency_keys")
    assert [row["key"] for row in remaining] == ["recent"]
    assert await store.fetchval("SELECT count(*) FROM orders WHERE id = $1", uuid.UUID(order_id)) == 1


async def test_expired_idempotency_keys_are_found_without_reading_every_key(store: asyncpg.Pool) -> None:
    """The hourly expiry deletes the oldest hour of the keys kept: it must not scan them all."""
    order_id = await placed_order(store)
    await store.execute(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, order_id, created_at)"
        " SELECT $1, 'key-' || n, 'fingerprint', $2, now() - make_interval(secs => (100000 - n) * 1.764)"
        " FROM generate_series(1, 100000) AS n",
        USER,
        uuid.UUID(order_id),
    )
    await store.execute("VACUUM ANALYZE idempotency_keys")
    plan = await store.fetchval(f"EXPLAIN (FORMAT JSON) {repository.FORGET_KEYS}", 48 * 3600)
    assert "idempotency_keys_created_at" in plan and "Seq Scan" not in plan


async def test_an_order_is_found_by_its_id_as_agora_spells_it_and_by_no_other_spelling(store):
    order_id = await placed_order(store)
    assert await repository.order_of(store, USER, order_id) is not None
    for spelling in (order_id.upper(), f"{{{order_id}}}", f"urn:uuid:{order_id}", order_id.replace("-", "")):
        assert await repository.order_of(store, USER, spelling) is None, spelling
