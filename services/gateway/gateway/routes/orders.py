"""Orders at the edge: placing (idempotent), reading with payment and shipment, following, cancelling."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import grpc
from agora.orders.v1 import orders_pb2
from agora.payments.v1 import payments_pb2
from agora.shipping.v1 import shipping_pb2
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from chassis.http import Problem
from chassis.resilience import ResilienceError
from gateway import views
from gateway.models import NOT_BLANK, STORABLE, WHITESPACE, Money
from gateway.params import OrderId
from gateway.security import CurrentUser
from gateway.upstream import as_problem, call, optional, running
from gateway.upstreams import Upstreams

TERMINAL = {"SHIPPED", "CANCELLED"}
FOLLOW_MAX_SECONDS = 600
FIRST_ANSWER_SECONDS = 2.0
"""How long orders may take to answer a follow with the order as it is, as for GetOrder."""
GATEWAY_STOPPING = b": this gateway is stopping; follow again\n\n"
FOLLOW_REFUSED = b": orders no longer accepts this follow (an expired access token, say); follow again\n\n"
FOLLOW_TIME_UP = b": this follow has lasted as long as one may; follow again\n\n"
# Answers to following again that another attempt with the same token would only repeat.
_REFUSALS = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND}
RESUME_SECONDS = 1.0
"""The pause before following again a stream orders broke off (it restarted, say)."""
FOLLOW_RETRY_AFTER_SECONDS = 10
IDEMPOTENCY_KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)

# The orders service's rules, stated here so the OpenAPI document tells clients what is valid.
Line = Annotated[str, Field(max_length=200, pattern=NOT_BLANK)]


class ShippingAddress(BaseModel):
    name: Line
    line1: Line
    line2: Annotated[str, Field(max_length=200, pattern=STORABLE)] | None = None
    city: Line
    postal_code: Annotated[str, Field(max_length=20, pattern=NOT_BLANK)]
    country: Annotated[str, Field(pattern=rf"^[{WHITESPACE}]*[A-Za-z]{{2}}[{WHITESPACE}]*$", description="ISO 3166-1 alpha-2, such as GB")]


class PaymentMethod(BaseModel):
    token: Annotated[str, Field(max_length=100, pattern=r"^[\x20-\x7e]+$")]


class PlaceOrder(BaseModel):
    shipping_address: ShippingAddress
    payment: PaymentMethod


class OrderLine(BaseModel):
    product_id: str
    name: str
    quantity: int
    unit_price: Money
    line_total: Money


class StatusChange(BaseModel):
    status: str
    at: str


class Order(BaseModel):
    order_id: str
    status: str
    status_reason: str | None
    items: list[OrderLine]
    total: Money
    shipping_address: ShippingAddress
    created_at: str
    updated_at: str
    history: list[StatusChange]


class PaymentSummary(BaseModel):
    status: str
    amount_captured: Money
    amount_refunded: Money


class ShipmentSummary(BaseModel):
    status: str
    carrier: str
    tracking_number: str


class OrderDetails(Order):
    payment: PaymentSummary | None
    shipment: ShipmentSummary | None
    degraded: list[str]


class OrderList(BaseModel):
    items: list[Order]
    page: int
    page_size: int
    total: int


async def _idempotency_key(key: Annotated[str | None, Header(alias="Idempotency-Key")] = None) -> str:
    """Judged before the body, as a dependency: a request without a key is refused as such (400),
    whatever else is wrong with it. Optional here only so that FastAPI leaves a missing key to
    us (it would answer 422); the OpenAPI document says it is required (`openapi.py`)."""
    if key is None:
        raise Problem(400, "the Idempotency-Key header is required to place an order")
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise Problem(400, "Idempotency-Key must be 1 to 255 printable characters")
    return key


class OpenFollows:
    """The follows each user holds open on this gateway instance, at most `per_user` at a time.

    A follow costs one request against the rate limit but holds a socket, a stream to orders and
    a follower there for up to FOLLOW_MAX_SECONDS: without a cap, one account could hold
    thousands and take the gateway's file descriptors from everyone."""

    def __init__(self, per_user: int):
        self.per_user = per_user
        self._open: Counter[str] = Counter()

    def take(self, user_id: str) -> Callable[[], None]:
        """Counts a follow in, or refuses it (429); returns what counts it out, once."""
        if self._open[user_id] >= self.per_user:
            raise Problem(429, f"at most {self.per_user} follows may be open at once; close one first",
                          headers={"Retry-After": str(FOLLOW_RETRY_AFTER_SECONDS)})
        self._open[user_id] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._open[user_id] -= 1
                if not self._open[user_id]:
                    del self._open[user_id]

        return release


class _FollowResponse(StreamingResponse):
    """Runs `on_close` however the response ends, even if its stream never started (a client gone
    before the headers were sent), which a `finally` in the stream alone would miss."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None]):
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def router(upstreams: Upstreams, stopping: asyncio.Event, follows: OpenFollows) -> APIRouter:
    """`stopping` is set when this gateway begins to stop: its follows end then, and their
    clients follow again through another instance, instead of holding the stop for its grace."""
    routes = APIRouter(prefix="/api/v1/orders", tags=["orders"],
                       responses={401: {"description": "no valid access token"}})

    @routes.post("", status_code=202, response_model=Order, summary="Place an order from the caller's cart",
                 responses={400: {"description": "Idempotency-Key missing or malformed"},
                            409: {"description": "the same key is still being processed, or another order "
                                                  "of the caller's is still being placed from this cart"},
                            422: {"description": "empty cart, a cart that costs nothing, invalid body, "
                                                  "or key reused with another body"}})
    async def place_order(
        _: CurrentUser, idempotency_key: Annotated[str, Depends(_idempotency_key)], body: PlaceOrder
    ) -> JSONResponse:
        address = body.shipping_address
        request = orders_pb2.PlaceOrderRequest(
            idempotency_key=idempotency_key,
            shipping_address=orders_pb2.Address(
                name=address.name, line1=address.line1, line2=address.line2 or "", city=address.city,
                postal_code=address.postal_code, country=address.country.strip().upper(),
            ),
            payment_token=body.payment.token,
        )
        try:
            order = await running("orders", upstreams.orders).PlaceOrder(request)
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.FAILED_PRECONDITION:  # an empty cart, or one that costs nothing
                raise Problem(422, error.details() or "the cart is empty") from None
            raise as_problem(error, "orders") from None
        except ResilienceError as error:
            raise as_problem(error, "orders") from None
        return JSONResponse(views.order(order), status_code=202)

    @routes.get("", response_model=OrderList, summary="The caller's orders, newest first")
    async def list_orders(
        _: CurrentUser, page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        page_size: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> JSONResponse:
        response = await call("orders", upstreams.orders, "ListOrders",
                              orders_pb2.ListOrdersRequest(page=page, page_size=page_size))
        return JSONResponse(views.page([views.order(o) for o in response.items], page=page,
                                       page_size=page_size, total=response.total))

    @routes.get("/{order_id}", response_model=OrderDetails, summary="One of the caller's orders",
                responses={404: {"description": "unknown, or not the caller's"}})
    async def get_order(_: CurrentUser, order_id: OrderId) -> JSONResponse:
        return JSONResponse(await _details(upstreams, order_id))

    @routes.get("/{order_id}/events", summary="Follow an order: one event per status change",
                response_class=StreamingResponse,
                responses={200: {"content": {"text/event-stream": {}}}, 404: {"description": "unknown"},
                           429: {"description": "too many follows open at once"}})
    async def follow_order(user: CurrentUser, order_id: OrderId) -> StreamingResponse:
        running("orders", upstreams.orders)
        release = follows.take(user.user_id)
        try:
            deadline = asyncio.get_running_loop().time() + FOLLOW_MAX_SECONDS
            watch = _watch(upstreams, order_id, deadline)
            try:
                async with asyncio.timeout(FIRST_ANSWER_SECONDS):
                    first = await watch.read()
            except TimeoutError:
                watch.cancel()
                raise Problem(504, "orders did not answer in time") from None
            except grpc.aio.AioRpcError as error:
                raise as_problem(error, "orders") from None
            if first is grpc.aio.EOF:  # orders ends a follow only after a terminal status
                raise Problem(503, "orders is unavailable; try again shortly", headers={"Retry-After": "1"})
        except BaseException:
            release()
            raise
        changes = _status_changes(upstreams, first, watch, deadline, stopping)

        def close() -> None:
            watch.cancel()
            release()

        return _FollowResponse(changes, on_close=close)

    @routes.post("/{order_id}/cancel", status_code=202, response_model=Order, summary="Cancel before dispatch",
                 responses={404: {"description": "unknown"}, 409: {"description": "already shipped or cancelled"}})
    async def cancel_order(_: CurrentUser, order_id: OrderId) -> JSONResponse:
        order = await call("orders", upstreams.orders, "CancelOrder", orders_pb2.CancelOrderRequest(order_id=order_id))
        return JSONResponse(views.order(order), status_code=202)

    return routes


async def _details(upstreams: Upstreams, order_id: str) -> dict[str, Any]:
    """The order, plus payment and shipment when those services answer (otherwise `degraded`)."""
    order = await call("orders", upstreams.orders, "GetOrder", orders_pb2.GetOrderRequest(order_id=order_id))
    (payment, payment_degraded), (shipment, shipment_degraded) = await asyncio.gather(
        optional("payments", upstreams.payments, "GetPayment", payments_pb2.GetPaymentRequest(order_id=order_id)),
        optional("shipping", upstreams.shipping, "GetShipment", shipping_pb2.GetShipmentRequest(order_id=order_id)),
    )
    degraded = [name for name, failed in (("payment", payment_degraded), ("shipment", shipment_degraded)) if failed]
    return {**views.order(order), "payment": views.payment(payment), "shipment": views.shipment(shipment),
            "degraded": degraded}


def _watch(upstreams: Upstreams, order_id: str, deadline: float) -> Any:
    remaining = deadline - asyncio.get_running_loop().time()
    return upstreams.orders.WatchOrder(orders_pb2.WatchOrderRequest(order_id=order_id), timeout=remaining)


async def _status_changes(
    upstreams: Upstreams, first: Any, watch: Any, deadline: float, stopping: asyncio.Event
) -> AsyncIterator[bytes]:
    """Server-sent events: the current status, then each change as orders pushes it, ending after
    a terminal one, or early when the gateway stops. A follow orders broke off is taken up again;
    it starts with the order as it is, sent on only if its status changed meanwhile."""
    last_status = None
    order = first
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        while True:
            if order.status != last_status:
                last_status = order.status
                yield f"event: status\ndata: {json.dumps(views.order(order))}\n\n".encode()
                if order.status in TERMINAL:
                    return
            reading = asyncio.ensure_future(watch.read())
            await asyncio.wait((reading, stopped), return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                reading.cancel()
                yield GATEWAY_STOPPING
                return
            try:
                pushed = reading.result()
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                    yield FOLLOW_TIME_UP
                    return
                if error.code() in _REFUSALS:
                    # Taken up again with the token it began with, which may have expired since.
                    yield FOLLOW_REFUSED
                    return
                pushed = grpc.aio.EOF
            if pushed is not grpc.aio.EOF:
                order = pushed
                continue
            yield b": orders unavailable, retrying\n\n"
            await asyncio.sleep(RESUME_SECONDS)
            if asyncio.get_running_loop().time() >= deadline:
                yield FOLLOW_TIME_UP
                return
            watch.cancel()
            watch = _watch(upstreams, first.order_id, deadline)
    finally:
        stopped.cancel()
        watch.cancel()
