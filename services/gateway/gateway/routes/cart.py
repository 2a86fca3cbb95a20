"""The caller's cart. Cart prices lines from catalog; the client sends only ids and quantities."""

from __future__ import annotations

from typing import Annotated

from agora.cart.v1 import cart_pb2
from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway import params, views
from gateway.models import JsonInteger, Money
from gateway.params import ProductId
from gateway.security import CurrentUser
from gateway.upstream import call
from gateway.upstreams import Upstreams


class Quantity(BaseModel):
    quantity: JsonInteger = Field(ge=0, le=99, description="0 removes the line")


class CartLine(BaseModel):
    product_id: str
    name: str
    quantity: int
    unit_price: Money
    line_total: Money


class Cart(BaseModel):
    items: list[CartLine]
    total: Money


def router(upstreams: Upstreams) -> APIRouter:
    routes = APIRouter(prefix="/api/v1/cart", tags=["cart"],
                       responses={401: {"description": "no valid access token"}})

    @routes.get("", response_model=Cart, summary="The caller's cart")
    async def get_cart(_: CurrentUser) -> JSONResponse:
        return JSONResponse(views.cart(await call("cart", upstreams.cart, "GetCart", cart_pb2.GetCartRequest())))

    @routes.put("/items/{product_id}", response_model=Cart, summary="Set a line's quantity (0 removes it)",
                responses={404: {"description": "unknown product"}, 422: {"description": "quantity out of range"},
                           409: {"description": "the cart holds products priced in another currency, "
                                                  "or 100 different products already"}})
    async def set_item(_: CurrentUser, product_id: ProductId, body: Quantity) -> JSONResponse:
        cart = await call("cart", upstreams.cart, "SetItem",
                          cart_pb2.SetItemRequest(product_id=product_id, quantity=body.quantity))
        return JSONResponse(views.cart(cart))

    @routes.delete("/items/{product_id}", response_model=Cart, summary="Remove a line")
    async def remove_item(product_id: Annotated[str, Path(min_length=1)], _: CurrentUser) -> JSONResponse:
        if len(product_id) > params.MAX_ID_LENGTH:  # names no product, so no line: nothing to remove
            cart = await call("cart", upstreams.cart, "GetCart", cart_pb2.GetCartRequest())
        else:
            cart = await call("cart", upstreams.cart, "RemoveItem", cart_pb2.RemoveItemRequest(product_id=product_id))
        return JSONResponse(views.cart(cart))

    @routes.delete("", status_code=204, response_class=Response, summary="Empty the cart")
    async def clear(_: CurrentUser) -> Response:
        await call("cart", upstreams.cart, "Clear", cart_pb2.ClearRequest())
        return Response(status_code=204)

    return routes
