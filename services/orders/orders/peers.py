"""The services orders asks, over the chassis' gRPC channels: cart and catalog to place an
order, shipping to cancel a confirmed one.

The chassis client forwards the caller's access token, so cart answers the caller's own cart.
A peer that does not answer is DependencyUnavailable (`chassis.grpc.dependency_failed`): nothing
changed, and the client may retry.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from agora.cart.v1 import cart_pb2, cart_pb2_grpc
from agora.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from agora.shipping.v1 import shipping_pb2, shipping_pb2_grpc

from chassis.grpc import DependencyUnavailable, dependency_failed
from chassis.resilience import ResilienceError
from orders.domain import AlreadyShipped, Money


class Cart:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = cart_pb2_grpc.CartServiceStub(channel)

    async def quantities(self) -> list[tuple[str, int]]:
        """The caller's cart as (product id, quantity) lines."""
        try:
            # Quantities only: orders prices the lines from catalog, so cart need not ask it too.
            cart = await self._stub.GetCart(cart_pb2.GetCartRequest(quantities_only=True))
        except (grpc.aio.AioRpcError, ResilienceError) as error:
            raise dependency_failed("cart", error) from error
        return [(item.product_id, item.quantity) for item in cart.items]

    async def remove_ordered(self, order_id: str, lines: Iterable[tuple[str, int]]) -> str | None:
        """Takes the order's lines out of the caller's cart (once per order, however often asked);
        why not, if cart did not answer. Under cart's own policy, as GetCart: a shorter timeout
        would fail where GetCart succeeds, and its failures would open cart's breaker for both."""
        request = cart_pb2.RemoveOrderedRequest(
            order_id=order_id,
            lines=[cart_pb2.OrderedLine(product_id=product_id, quantity=quantity) for product_id, quantity in lines],
        )
        try:
            await self._stub.RemoveOrdered(request)
        except (grpc.aio.AioRpcError, ResilienceError) as error:
            return f"cart: {error}"
        return None


class Catalog:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = catalog_pb2_grpc.CatalogServiceStub(channel)

    async def prices(self, product_ids: Iterable[str]) -> dict[str, tuple[str, Money]]:
        """Name and current price of each product the catalog still sells."""
        try:
            response = await self._stub.GetProducts(catalog_pb2.GetProductsRequest(ids=list(product_ids)))
        except (grpc.aio.AioRpcError, ResilienceError) as error:
            raise dependency_failed("catalog", error) from error
        return {
            product.id: (product.name, Money(product.price.amount, product.price.currency))
            for product in response.products
        }


class Shipping:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = shipping_pb2_grpc.ShippingServiceStub(channel)

    async def cancel_shipment(self, order_id: str) -> None:
        """Shipping cancels the order's parcel (or makes sure none is booked); AlreadyShipped if
        the carrier dispatched it first."""
        try:
            await self._stub.CancelShipment(shipping_pb2.CancelShipmentRequest(order_id=order_id))
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.FAILED_PRECONDITION:
                raise AlreadyShipped(order_id) from error
            raise dependency_failed("shipping", error) from error
        except ResilienceError as error:
            raise DependencyUnavailable("shipping") from error
