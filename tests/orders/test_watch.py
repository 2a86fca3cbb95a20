"""WatchOrder: the order, then each status change pushed as it commits, until SHIPPED or CANCELLED.

The follower never polls: a change reaches it through the trigger's NOTIFY, or, if the
listening connection was down when the change committed, through the wake-up every follower
gets once it listens again. So a message arriving at all proves the push.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
from agora.orders.v1 import orders_pb2, orders_pb2_grpc

from chassis import messaging
from chassis.grpc import CALLER_METADATA
from orders.changes import CHANNEL, OrderChanges
from tests.orders.conftest import Orders, confirm, deliver, orders_service, rpc_error
from tests.orders.test_api import fill_cart
from tests.support import free_port

PUSHED_WITHIN_SECONDS = 10


def watch(orders: Orders, user: str | None, order_id: str) -> Any:
    metadata = [(CALLER_METADATA, "gateway")]
    if user is not None:
        metadata.append(("authorization", f"Bearer {orders.tokens.sign(user)}"))
    return orders.stub.WatchOrder(orders_pb2.WatchOrderRequest(order_id=order_id), metadata=metadata, timeout=60)


async def placed(orders: Orders, user: str = "ada") -> orders_pb2.Order:
    fill_cart(orders, user, (orders.shop.add_product("Espresso cup", 1250), 1))
    return await orders.place(user)


async def dispatched(orders: Orders, order_id: str) -> None:
    data = {"order_id": order_id, "user_id": "ada", "carrier": "parcelfast", "tracking_number": "PF1"}
    await deliver(orders.pool, messaging.Envelope.new("shipping", "ShipmentDispatched", data, subject=order_id))


async def next_message(stream: Any) -> orders_pb2.Order:
    async with asyncio.timeout(PUSHED_WITHIN_SECONDS):
        return await stream.read()


async def test_a_watch_shows_the_order_then_each_status_change_and_ends_after_the_last(orders: Orders):
    order = await placed(orders)
    stream = watch(orders, "ada", order.order_id)
    assert (await next_message(stream)).status == "PENDING"

    await confirm(orders.pool, order.order_id)
    confirmed = await next_message(stream)
    assert [change.status for change in confirmed.history] == ["PENDING", "CONFIRMED"]

    await dispatched(orders, order.order_id)
    shipped = await next_message(stream)
    assert (shipped.status, shipped.order_id) == ("SHIPPED", order.order_id)
    assert await next_message(stream) is grpc.aio.EOF
    assert await stream.code() is grpc.StatusCode.OK


async def test_a_watch_of_a_final_order_shows_it_once_and_ends(orders: Orders):
    order = await placed(orders)
    await orders.cancel("ada", order.order_id)

    messages = [message async for message in watch(orders, "ada", order.order_id)]

    assert [message.status for message in messages] == ["CANCELLED"]


async def test_a_change_made_while_the_listener_was_cut_off_still_reaches_the_follower(orders: Orders):
    order = await placed(orders)
    stream = watch(orders, "ada", order.order_id)
    assert (await next_message(stream)).status == "PENDING"

    cut = await orders.pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    assert cut >= 1
    await confirm(orders.pool, order.order_id)  # before the listener is back: its NOTIFY is lost

    assert (await next_message(stream)).status == "CONFIRMED"


async def test_a_stopping_instance_ends_its_watches_at_once_for_their_callers_to_watch_elsewhere(
    fresh_database: str, tmp_path: Path
):
    """Without this a watch would hold the stop for the whole grace period and then be cancelled."""
    port = free_port()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel, contextlib.AsyncExitStack() as stack:
        orders = await stack.enter_async_context(orders_service(fresh_database, tmp_path, grpc_port=port))
        order = await placed(orders)
        stream = watch(replace(orders, stub=orders_pb2_grpc.OrdersServiceStub(channel)), "ada", order.order_id)
        assert (await next_message(stream)).status == "PENDING"

        stopping = asyncio.create_task(stack.pop_all().aclose())
        assert await next_message(stream) is grpc.aio.EOF
        assert await stream.code() is grpc.StatusCode.OK
        await stopping


async def test_only_the_owner_may_watch_an_order(orders: Orders):
    order = await placed(orders)

    for user, order_id, code in (
        ("bob", order.order_id, grpc.StatusCode.NOT_FOUND),
        ("ada", "not-a-uuid", grpc.StatusCode.NOT_FOUND),
        (None, order.order_id, grpc.StatusCode.UNAUTHENTICATED),
    ):
        error = await rpc_error(next_message(watch(orders, user, order_id)))
        assert error.code() == code, (user, order_id)


def test_a_notification_wakes_the_followers_of_its_order_only_and_leavers_are_forgotten():
    changes = OrderChanges(pool=None)  # type: ignore[arg-type]
    order_id = str(uuid.uuid4())
    with changes.following(order_id) as mine, changes.following(str(uuid.uuid4())) as other:
        changes._on_notify(None, 0, CHANNEL, order_id)
        assert mine.is_set() and not other.is_set()
    assert changes._followers == {}
