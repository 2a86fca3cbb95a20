"""Inventory's gRPC API through the real bootstrap and chassis server."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from agora.inventory.v1 import inventory_pb2

from chassis.grpc import FIELD_VIOLATIONS_KEY
from chassis.messaging import Delivery, Envelope
from tests.inventory.conftest import Service, new_id, placed


async def rpc_error(call) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_an_admin_sets_the_stock_and_anyone_sees_the_availability(service: Service) -> None:
    cup, never_stocked = new_id(), new_id()
    answer = await service.call(
        "SetStock", inventory_pb2.SetStockRequest(product_id=cup, quantity=7), token=service.admin
    )
    assert (answer.product_id, answer.available, answer.reserved) == (cup, 7, 0)

    availability = await service.call(
        "GetAvailability", inventory_pb2.GetAvailabilityRequest(product_ids=[cup, never_stocked])
    )
    assert [(a.product_id, a.available, a.in_stock) for a in availability.items] == [
        (cup, 7, True),
        (never_stocked, 0, False),
    ]

    stock = await service.call("GetStock", inventory_pb2.GetStockRequest(product_id=cup), token=service.admin)
    assert (stock.available, stock.reserved, stock.sold) == (7, 0, 0)
    stock = await service.call("GetStock", inventory_pb2.GetStockRequest(product_id=never_stocked), token=service.admin)
    assert (stock.product_id, stock.available, stock.reserved, stock.sold) == (never_stocked, 0, 0, 0)


async def test_stock_is_for_admins_only(service: Service) -> None:
    set_stock = inventory_pb2.SetStockRequest(product_id=new_id(), quantity=1)
    get_stock = inventory_pb2.GetStockRequest(product_id=new_id())
    assert (await rpc_error(service.call("SetStock", set_stock))).code() is grpc.StatusCode.UNAUTHENTICATED
    assert (await rpc_error(service.call("GetStock", get_stock))).code() is grpc.StatusCode.UNAUTHENTICATED
    for method, request in [("SetStock", set_stock), ("GetStock", get_stock)]:
        error = await rpc_error(service.call(method, request, token=service.customer))
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_a_negative_quantity_is_a_field_violation(service: Service) -> None:
    request = inventory_pb2.SetStockRequest(product_id=new_id(), quantity=-1)
    error = await rpc_error(service.call("SetStock", request, token=service.admin))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [v["field"] for v in json.loads(dict(error.trailing_metadata())[FIELD_VIOLATIONS_KEY])] == ["quantity"]


async def test_an_order_placed_on_the_bus_is_reserved_and_answered_on_the_bus(service: Service) -> None:
    cup, order = new_id(), new_id()
    await service.call("SetStock", inventory_pb2.SetStockRequest(product_id=cup, quantity=3), token=service.admin)
    answers: asyncio.Queue[Envelope] = asyncio.Queue()

    async def collect(delivery: Delivery) -> None:
        await answers.put(Envelope.parse(delivery.body))
        await delivery.ack()

    subscription = await service.bus.subscribe(
        "inventory-test", ["agora.inventory.StockReserved.v1"], collect, concurrency=1
    )
    try:
        await service.publish(placed(order, {cup: 2}))
        async with asyncio.timeout(10):
            answer = await answers.get()
    finally:
        await subscription.stop()

    assert (answer.type, answer.data) == (
        "agora.inventory.StockReserved.v1",
        {"order_id": order, "lines": [{"product_id": cup, "quantity": 2}]},
    )
    stock = await service.call("GetStock", inventory_pb2.GetStockRequest(product_id=cup), token=service.admin)
    assert (stock.available, stock.reserved) == (1, 2)
