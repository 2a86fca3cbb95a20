"""Shipping's gRPC API: translates the request for the use case and the shipment into a message."""

from __future__ import annotations

import asyncpg
import grpc
from agora.shipping.v1 import shipping_pb2, shipping_pb2_grpc

from chassis import auth
from chassis.grpc import translating
from shipping import handlers
from shipping.repository import Shipment


def _errors(error: Exception) -> tuple[grpc.StatusCode, str] | None:
    if isinstance(error, handlers.ShipmentNotFound):
        return grpc.StatusCode.NOT_FOUND, "no shipment for this order"
    return None


def _message(shipment: Shipment) -> shipping_pb2.Shipment:
    return shipping_pb2.Shipment(
        order_id=shipment.order_id,
        status=shipment.status,
        carrier=shipment.carrier or "",
        tracking_number=shipment.tracking_number or "",
    )


class ShippingApi(shipping_pb2_grpc.ShippingServiceServicer):
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    @translating(_errors)
    async def GetShipment(self, request, context):  # type: ignore[no-untyped-def]
        principal = auth.require_principal()
        return _message(await handlers.get_shipment(request.order_id, principal=principal, pool=self._pool))
