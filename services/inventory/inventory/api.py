"""Inventory's gRPC API: translates requests into handler calls and stock into messages."""

from __future__ import annotations

import asyncpg
from agora.inventory.v1 import inventory_pb2, inventory_pb2_grpc

from chassis import auth
from chassis.grpc import InvalidArgument
from inventory import handlers
from inventory.domain import InvalidQuantity

MAX_IDS = 500
MAX_PRODUCT_ID_LENGTH = 100


def _product_id(value: str) -> str:
    if not value or len(value) > MAX_PRODUCT_ID_LENGTH:
        raise InvalidArgument([("product_id", f"must be 1 to {MAX_PRODUCT_ID_LENGTH} characters")])
    return value


class InventoryApi(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def GetAvailability(self, request, context):  # type: ignore[no-untyped-def]
        if len(request.product_ids) > MAX_IDS:
            raise InvalidArgument([("product_ids", f"at most {MAX_IDS} ids per call")])
        stock = await handlers.get_stock(list(dict.fromkeys(request.product_ids)), pool=self._pool)
        return inventory_pb2.GetAvailabilityResponse(
            items=[
                inventory_pb2.Availability(product_id=product_id, available=s.available, in_stock=s.available > 0)
                for product_id, s in stock.items()
            ]
        )

    async def SetStock(self, request, context):  # type: ignore[no-untyped-def]
        auth.require_principal("admin")
        product_id = _product_id(request.product_id)
        try:
            stock = await handlers.set_stock(product_id, request.quantity, pool=self._pool)
        except InvalidQuantity as error:
            raise InvalidArgument([("quantity", str(error))]) from None
        return inventory_pb2.SetStockResponse(product_id=product_id, available=stock.available, reserved=stock.reserved)

    async def GetStock(self, request, context):  # type: ignore[no-untyped-def]
        auth.require_principal("admin")
        product_id = _product_id(request.product_id)
        stock = (await handlers.get_stock([product_id], pool=self._pool))[product_id]
        return inventory_pb2.Stock(
            product_id=product_id, available=stock.available, reserved=stock.reserved, sold=stock.sold
        )
