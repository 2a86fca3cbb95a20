"""Payments' gRPC API: translates the request for the use case and the payment into a message."""

from __future__ import annotations

import asyncpg
import grpc
from agora.common.v1 import common_pb2
from agora.payments.v1 import payments_pb2, payments_pb2_grpc

from chassis import auth
from chassis.grpc import translating
from payments import handlers
from payments.domain import Payment


def _errors(error: Exception) -> tuple[grpc.StatusCode, str] | None:
    if isinstance(error, handlers.PaymentNotFound):
        return grpc.StatusCode.NOT_FOUND, "no payment for this order"
    return None


def _message(payment: Payment) -> payments_pb2.Payment:
    currency = payment.amount.currency
    return payments_pb2.Payment(
        order_id=payment.order_id,
        status=str(payment.status),
        amount_authorized=common_pb2.Money(amount=payment.authorized, currency=currency),
        amount_captured=common_pb2.Money(amount=payment.captured, currency=currency),
        amount_refunded=common_pb2.Money(amount=payment.refunded, currency=currency),
    )


class PaymentsApi(payments_pb2_grpc.PaymentsServiceServicer):
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    @translating(_errors)
    async def GetPayment(self, request, context):  # type: ignore[no-untyped-def]
        principal = auth.require_principal()
        return _message(await handlers.get_payment(request.order_id, principal=principal, pool=self._pool))
