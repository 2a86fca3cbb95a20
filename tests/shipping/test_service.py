"""Shipping as a running service: the real bootstrap, consumer, dispatcher, outbox relay and gRPC
server, fed events through NATS and asked through gRPC the way the gateway asks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from agora.shipping.v1 import shipping_pb2, shipping_pb2_grpc

from chassis.grpc import CALLER_METADATA
from chassis.messaging import Envelope, NatsBus
from chassis.runtime import ServiceApp
from shipping.bootstrap import ShippingSettings, build
from tests.conftest import NATS_URL, unique_city
from tests.shipping.conftest import USER, new_order_id, order_cancelled, order_confirmed
from tests.support import Tokens, free_port, running_service


class Service:
    def __init__(self, stub: shipping_pb2_grpc.ShippingServiceStub, bus: NatsBus, tokens: Tokens):
        self.stub = stub
        self.bus = bus
        self.tokens = tokens

    async def publish(self, event: Envelope) -> None:
        await self.bus.publish(event.to_json(), event.type, msg_id=event.id, headers={})

    async def shipment(
        self, order_id: str, *, user_id: str = USER, roles: tuple[str, ...] = ("customer",), token: str | None = "sign"
    ) -> shipping_pb2.Shipment:
        metadata = [(CALLER_METADATA, "gateway")]
        if token is not None:
            metadata.append(("authorization", f"Bearer {self.tokens.sign(user_id, *roles)}"))
        return await self.stub.GetShipment(
            shipping_pb2.GetShipmentRequest(order_id=order_id), metadata=metadata, timeout=10
        )

    async def cancel(self, order_id: str, *, caller: str = "orders") -> shipping_pb2.Shipment:
        """CancelShipment as orders asks it, forwarding the customer's token."""
        metadata = [(CALLER_METADATA, caller), ("authorization", f"Bearer {self.tokens.sign(USER, 'customer')}")]
        return await self.stub.CancelShipment(
            shipping_pb2.CancelShipmentRequest(order_id=order_id), metadata=metadata, timeout=10
        )

    async def wait_for(self, order_id: str, status: str) -> shipping_pb2.Shipment:
        async with asyncio.timeout(10):
            while True:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    shipment = await self.shipment(order_id)
                    if shipment.status == status:
                        return shipment
                await asyncio.sleep(0.05)


@pytest.fixture
async def service(fresh_database: str, tmp_path: Path) -> AsyncIterator[Service]:
    city = unique_city()
    settings = ShippingSettings(
        service="shipping",
        city=city,
        home=tmp_path,
        grpc_port=free_port(),
        http_port=free_port(),
        dsn=fresh_database,
        nats_url=NATS_URL,
        mtls="off",
        allowed_callers=frozenset({"gateway", "orders"}),
        dispatch_delay_seconds=0.5,
    )
    tokens = Tokens()
    app = ServiceApp(settings)
    bus = NatsBus(NATS_URL, city)
    await bus.connect()
    try:
        await build(app, verifier=tokens.verifier())
        async with (
            running_service(app),
            grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel,
        ):
            yield Service(shipping_pb2_grpc.ShippingServiceStub(channel), bus, tokens)
    finally:
        await bus.delete_streams()
        await bus.close()


async def test_a_confirmed_order_is_dispatched_after_the_delay(service: Service) -> None:
    order_id = new_order_id()
    await service.publish(order_confirmed(order_id))

    created = await service.wait_for(order_id, "created")
    assert (created.carrier, created.tracking_number) == ("parcelfast", "")

    dispatched = await service.wait_for(order_id, "dispatched")
    assert dispatched.carrier == "parcelfast"
    assert dispatched.tracking_number.startswith("PF") and len(dispatched.tracking_number) == 11


async def test_an_order_cancelled_before_dispatch_is_never_dispatched(service: Service) -> None:
    order_id = new_order_id()
    await service.publish(order_confirmed(order_id))
    await service.publish(order_cancelled(order_id))

    await service.wait_for(order_id, "cancelled")
    await asyncio.sleep(0.8)  # past the dispatch delay
    assert (await service.shipment(order_id)).status == "cancelled"


async def test_only_the_customer_or_an_admin_sees_the_shipment(service: Service) -> None:
    order_id = new_order_id()
    await service.publish(order_confirmed(order_id))
    await service.wait_for(order_id, "created")

    assert (await service.shipment(order_id, user_id="admin-1", roles=("admin",))).order_id == order_id
    for call in (service.shipment(order_id, user_id="someone-else"), service.shipment(new_order_id())):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await service.shipment(order_id, token=None)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_orders_cancels_a_shipment_before_dispatch_and_is_refused_after(service: Service) -> None:
    early, late = new_order_id(), new_order_id()
    await service.publish(order_confirmed(early))
    await service.publish(order_confirmed(late))
    await service.wait_for(early, "created")

    cancelled = await service.cancel(early)
    await service.wait_for(late, "dispatched")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await service.cancel(late)

    assert (cancelled.order_id, cancelled.status, cancelled.carrier) == (early, "cancelled", "parcelfast")
    assert (refused.value.code(), refused.value.details()) == (grpc.StatusCode.FAILED_PRECONDITION, "already shipped")
    await asyncio.sleep(0.8)  # past the dispatch delay
    assert (await service.shipment(early)).status == "cancelled"


async def test_orders_cancel_of_an_order_shipping_has_not_heard_of_leaves_nothing_to_see(service: Service) -> None:
    order_id = new_order_id()

    assert (await service.cancel(order_id)).status == "cancelled"
    await service.publish(order_confirmed(order_id))

    await asyncio.sleep(0.8)  # time to consume the confirmation and pass the dispatch delay
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await service.shipment(order_id)
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


async def test_only_orders_may_cancel_a_shipment(service: Service) -> None:
    order_id = new_order_id()
    await service.publish(order_confirmed(order_id))
    await service.wait_for(order_id, "created")

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await service.cancel(order_id, caller="gateway")

    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert (await service.shipment(order_id)).status == "created"
