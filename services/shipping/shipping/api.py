"""Shipping's gRPC API: translates the request for the use case and the shipment into a message."""

from __future__ import annotations

import asyncpg
import grpc
from agora.shipping.v1 import shipping_pb2, shipping_pb2_grpc

from chassis import auth
from chassis.grpc import InvalidArgument, translating
from shipping import handlers
from shipping.carrier import CarrierAdapter, CarrierRefused
from shipping.handlers import Outbox
from shipping.repository import Shipment


def _errors(error: Exception) -> tuple[grpc.StatusCode, str] | None:
    if isinstance(error, handlers.ShipmentNotFound):
        return grpc.StatusCode.NOT_FOUND, "no shipment for this order"
    if isinstance(error, handlers.ShipmentAlreadyDispatched):
        return grpc.StatusCode.FAILED_PRECONDITION, "already shipped"
    if isinstance(error, CarrierRefused):
        return grpc.StatusCode.UNAVAILABLE, "the carrier did not take the cancel; try again"
    return None


def _message(shipment: Shipment) -> shipping_pb2.Shipment:
    return shipping_pb2.Shipment(
        order_id=shipment.order_id,
        status=shipment.status,
        carrier=shipment.carrier or "",
        tracking_number=shipment.tracking_number or "",
    )


class ShippingApi(shipping_pb2_grpc.ShippingServiceServicer):
    def __init__(self, pool: asyncpg.Pool, *, carrier: CarrierAdapter, outbox: Outbox):
        self._pool = pool
        self._carrier = carrier
        self._outbox = outbox

    @translating(_errors)
    async def GetShipment(self, request, context):  # type: ignore[no-untyped-def]
        principal = auth.require_principal()
        return _message(await handlers.get_shipment(request.order_id, principal=principal, pool=self._pool))

    @translating(_errors)
    async def CancelShipment(self, request, context):  # type: ignore[no-untyped-def]
        auth.require_caller("orders")
        if not request.order_id:
            raise InvalidArgument([("order_id", "is required")])
        shipment = await handlers.cancel_before_dispatch(
            request.order_id,
            principal=auth.require_principal(),
            pool=self._pool,
            carrier=self._carrier,
            outbox=self._outbox,
        )
        return _message(shipment)
