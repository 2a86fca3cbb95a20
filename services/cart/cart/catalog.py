"""What cart asks catalog: the current name and price of the products in a cart."""

from __future__ import annotations

from collections.abc import Collection

import grpc
from agora.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from cart.domain import Product
from chassis.grpc import dependency_failed
from chassis.resilience import ResilienceError


class Catalog:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = catalog_pb2_grpc.CatalogServiceStub(channel)

    async def products(self, ids: Collection[str]) -> dict[str, Product]:
        """The products catalog knows among `ids`, by id."""
        if not ids:
            return {}
        try:
            response = await self._stub.GetProducts(catalog_pb2.GetProductsRequest(ids=sorted(ids)))
        except (grpc.aio.AioRpcError, ResilienceError) as error:
            raise dependency_failed("catalog", error) from error
        return {
            p.id: Product(id=p.id, name=p.name, price=p.price.amount, currency=p.price.currency)
            for p in response.products
        }
