"""Cart's gRPC API: the user from the verified token, requests into handler calls, carts into messages."""

from __future__ import annotations

from typing import Any

import grpc
import redis.exceptions
from agora.cart.v1 import cart_pb2, cart_pb2_grpc
from agora.common.v1 import common_pb2

from cart import handlers
from cart.catalog import Catalog
from cart.domain import CartFull, InvalidQuantity, MixedCurrencies, PricedCart, UnknownProduct
from cart.store import CartStore
from chassis import auth
from chassis.grpc import InvalidArgument, translating

MAX_ID_LENGTH = 100


def _errors(error: Exception) -> tuple[grpc.StatusCode, str] | None:
    if isinstance(error, UnknownProduct):
        return grpc.StatusCode.NOT_FOUND, "unknown product"
    if isinstance(error, MixedCurrencies):
        return grpc.StatusCode.FAILED_PRECONDITION, "the cart's products are priced in different currencies"
    if isinstance(error, CartFull):
        return grpc.StatusCode.FAILED_PRECONDITION, str(error)
    # Redis unreachable is an outage a caller may wait out or retry, not a bug in cart.
    if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return grpc.StatusCode.UNAVAILABLE, "cart's store is unavailable"
    return None


def _message(cart: PricedCart) -> cart_pb2.Cart:
    def money(amount: int) -> common_pb2.Money:
        return common_pb2.Money(amount=amount, currency=cart.currency)

    return cart_pb2.Cart(
        items=[
            cart_pb2.CartItem(
                product_id=line.product_id,
                name=line.name,
                quantity=line.quantity,
                unit_price=money(line.unit_price),
                line_total=money(line.line_total),
            )
            for line in cart.lines
        ],
        total=money(cart.total),
    )


def _product_id(value: str) -> str:
    if not value or len(value) > MAX_ID_LENGTH:
        raise InvalidArgument([("product_id", f"must be 1 to {MAX_ID_LENGTH} characters")])
    return value


class CartApi(cart_pb2_grpc.CartServiceServicer):
    def __init__(self, store: CartStore, catalog: Catalog):
        self._deps: dict[str, Any] = {"store": store, "catalog": catalog}

    @translating(_errors)
    async def GetCart(self, request, context):  # type: ignore[no-untyped-def]
        user = auth.require_principal()
        if request.quantities_only:
            quantities = await handlers.get_quantities(user.user_id, store=self._deps["store"])
            return cart_pb2.Cart(
                items=[cart_pb2.CartItem(product_id=product_id, quantity=n) for product_id, n in sorted(quantities.items())]
            )
        return _message(await handlers.get_cart(user.user_id, **self._deps))

    @translating(_errors)
    async def SetItem(self, request, context):  # type: ignore[no-untyped-def]
        user = auth.require_principal()
        product_id = _product_id(request.product_id)
        try:
            cart = await handlers.set_item(user.user_id, product_id, request.quantity, **self._deps)
        except InvalidQuantity as error:
            raise InvalidArgument([("quantity", str(error))]) from None
        return _message(cart)

    @translating(_errors)
    async def RemoveItem(self, request, context):  # type: ignore[no-untyped-def]
        user = auth.require_principal()
        return _message(await handlers.remove_item(user.user_id, _product_id(request.product_id), **self._deps))

    async def Clear(self, request, context):  # type: ignore[no-untyped-def]
        user = auth.require_principal()
        await handlers.clear_cart(user.user_id, store=self._deps["store"])
        return cart_pb2.ClearResponse()

    @translating(_errors)
    async def RemoveOrdered(self, request, context):  # type: ignore[no-untyped-def]
        user = auth.require_principal()
        if not 1 <= len(request.order_id) <= MAX_ID_LENGTH:
            raise InvalidArgument([("order_id", f"must be 1 to {MAX_ID_LENGTH} characters")])
        lines: dict[str, int] = {}
        for index, line in enumerate(request.lines):
            if line.quantity < 1:
                raise InvalidArgument([(f"lines[{index}].quantity", "must be at least 1")])
            product_id = _product_id(line.product_id)
            lines[product_id] = lines.get(product_id, 0) + line.quantity
        await handlers.remove_ordered(user.user_id, request.order_id, lines, store=self._deps["store"])
        return cart_pb2.RemoveOrderedResponse()
