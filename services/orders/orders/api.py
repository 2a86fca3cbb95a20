"""Orders' gRPC servicer: requests become commands for the caller (from the verified token),
orders become messages, and domain errors become status codes (here, and only here)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from agora.common.v1 import common_pb2
from agora.orders.v1 import orders_pb2, orders_pb2_grpc

from chassis import auth
from chassis.grpc import InvalidArgument
from orders import domain

Handle = Callable[[Any], Awaitable[Any]]
Follow = Callable[[domain.GetOrder], AsyncIterator[domain.Order]]

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

_STATUS: dict[type[Exception], tuple[grpc.StatusCode, str | None]] = {
    domain.OrderNotFound: (grpc.StatusCode.NOT_FOUND, "no such order"),
    domain.EmptyCart: (grpc.StatusCode.FAILED_PRECONDITION, "cart is empty"),
    domain.NotOrderable: (grpc.StatusCode.FAILED_PRECONDITION, None),
    domain.InvalidTransition: (grpc.StatusCode.FAILED_PRECONDITION, None),
    domain.AlreadyShipped: (grpc.StatusCode.FAILED_PRECONDITION, "already shipped"),
    domain.KeyInFlight: (grpc.StatusCode.ABORTED, "a request with this idempotency key is still being processed"),
    domain.PlacingInFlight: (
        grpc.StatusCode.ABORTED,
        "another order of yours is still being placed from this cart; try again once it is answered",
    ),
}


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _money(money: domain.Money) -> common_pb2.Money:
    return common_pb2.Money(amount=money.amount, currency=money.currency)


def _order(order: domain.Order) -> orders_pb2.Order:
    address = order.shipping_address
    return orders_pb2.Order(
        order_id=order.id,
        status=order.status,
        status_reason=order.status_reason or "",
        items=[
            orders_pb2.OrderItem(
                product_id=line.product_id,
                name=line.name,
                quantity=line.quantity,
                unit_price=_money(line.unit_price),
                line_total=_money(line.line_total),
            )
            for line in order.items
        ],
        total=_money(order.total),
        shipping_address=orders_pb2.Address(
            name=address.name,
            line1=address.line1,
            line2=address.line2,
            city=address.city,
            postal_code=address.postal_code,
            country=address.country,
        ),
        created_at=_timestamp(order.created_at),
        updated_at=_timestamp(order.updated_at),
        history=[orders_pb2.StatusChange(status=change.status, at=_timestamp(change.at)) for change in order.history],
    )


class OrdersApi(orders_pb2_grpc.OrdersServiceServicer):
    def __init__(self, handle: Handle, follow: Follow):
        self._handle = handle
        self._follow = follow

    async def _run(self, command: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await self._handle(command)
        except domain.InvalidInput as error:
            raise InvalidArgument(error.violations) from None
        except domain.KeyReused:
            raise InvalidArgument([("idempotency_key", "was already used for a different request")]) from None
        except tuple(_STATUS) as error:
            code, detail = _STATUS[type(error)]
            await context.abort(code, detail or str(error))

    async def PlaceOrder(self, request, context):  # type: ignore[no-untyped-def]
        address = request.shipping_address
        command = domain.PlaceOrder(
            user_id=auth.require_principal().user_id,
            idempotency_key=request.idempotency_key,
            shipping_address=domain.Address(
                name=address.name,
                line1=address.line1,
                line2=address.line2,
                city=address.city,
                postal_code=address.postal_code,
                country=address.country,
            ),
            payment_token=request.payment_token,
        )
        return _order(await self._run(command, context))

    async def GetOrder(self, request, context):  # type: ignore[no-untyped-def]
        query = domain.GetOrder(user_id=auth.require_principal().user_id, order_id=request.order_id)
        return _order(await self._run(query, context))

    async def WatchOrder(self, request, context):  # type: ignore[no-untyped-def]
        query = domain.GetOrder(user_id=auth.require_principal().user_id, order_id=request.order_id)
        try:
            async for order in self._follow(query):
                yield _order(order)
        except domain.OrderNotFound:
            await context.abort(*_STATUS[domain.OrderNotFound])

    async def ListOrders(self, request, context):  # type: ignore[no-untyped-def]
        user_id = auth.require_principal().user_id
        page = request.page or 1
        page_size = request.page_size or DEFAULT_PAGE_SIZE
        violations = []
        if page < 1:
            violations.append(("page", "must be 1 or more"))
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            violations.append(("page_size", f"must be between 1 and {MAX_PAGE_SIZE}"))
        if violations:
            raise InvalidArgument(violations)
        orders, total = await self._run(domain.ListOrders(user_id, page, page_size), context)
        return orders_pb2.ListOrdersResponse(items=[_order(order) for order in orders], total=total)

    async def CancelOrder(self, request, context):  # type: ignore[no-untyped-def]
        command = domain.CancelOrder(user_id=auth.require_principal().user_id, order_id=request.order_id)
        return _order(await self._run(command, context))
