"""Payments as it runs: the real bootstrap, fed by NATS, answering GetPayment over gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from agora.payments.v1 import payments_pb2, payments_pb2_grpc

from chassis import auth
from chassis.grpc import CALLER_METADATA
from chassis.messaging import Envelope, NatsBus
from chassis.runtime import ServiceApp
from payments.bootstrap import PaymentsSettings, build
from tests.conftest import NATS_URL, unique_city
from tests.payments.conftest import USER, new_order_id, order_confirmed, order_placed
from tests.support import Tokens, free_port, running_service

OTHER_USER = "5d1c0a3b-0000-4000-8000-000000000002"


@dataclass
class Service:
    stub: payments_pb2_grpc.PaymentsServiceStub
    tokens: Tokens
    bus: NatsBus
    city: str

    async def get_payment(self, order_id: str, *, user_id: str | None = USER, roles: tuple[str, ...] = ()) -> Any:
        metadata = [(CALLER_METADATA, "gateway")]
        if user_id is not None:
            metadata.append(("authorization", f"Bearer {self.tokens.sign(user_id, *roles)}"))
        return await self.stub.GetPayment(
            payments_pb2.GetPaymentRequest(order_id=order_id), metadata=metadata, timeout=10
        )

    async def publish(self, event: Envelope) -> None:
        await self.bus.publish(event.to_json(), event.type, msg_id=event.id, headers={})

    async def published(self, name: str) -> dict[str, Any]:
        """The data of the last `name` payments published on NATS."""
        message = await self.bus.jetstream.get_last_msg(f"{self.city}_payments".upper(), f"{self.city}.payments.{name}")
        return json.loads(message.data)["data"]


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


@pytest.fixture
async def service(fresh_database: str, tmp_path: Path) -> AsyncIterator[Service]:
    city = unique_city()
    settings = PaymentsSettings(
        service="payments",
        city=city,
        home=tmp_path,
        grpc_port=free_port(),
        http_port=free_port(),
        dsn=fresh_database,
        nats_url=NATS_URL,
        mtls="off",
        allowed_callers=frozenset({"gateway"}),
        provider_latency_ms=1,
    )
    tokens = Tokens()
    app = ServiceApp(settings)
    await build(app, verifier=auth.TokenVerifier(tokens.jwks, issuer="agora-identity", audience="agora"))
    bus = NatsBus(NATS_URL, city)
    await bus.connect()
    try:
        async with (
            running_service(app),
            grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel,
        ):
            yield Service(payments_pb2_grpc.PaymentsServiceStub(channel), tokens, bus, city)
    finally:
        with contextlib.suppress(Exception):
            await bus.delete_streams()
        await bus.close()


async def test_an_order_placed_on_the_bus_is_authorized_then_captured_once_confirmed(service: Service) -> None:
    order_id = new_order_id()
    await service.publish(order_placed(order_id, total=4499))

    async def authorized() -> Any:
        payment = await service.get_payment(order_id)
        assert payment.status == "authorized"
        return payment

    payment = await eventually(authorized)
    assert (payment.amount_authorized.amount, payment.amount_authorized.currency) == (4499, "USD")
    assert await eventually(lambda: service.published("PaymentAuthorized")) == {
        "order_id": order_id,
        "amount": {"amount": 4499, "currency": "USD"},
    }

    confirmed = order_confirmed(order_id, total=4499)
    await service.publish(confirmed)
    await service.publish(order_confirmed(order_id, total=4499))

    async def captured() -> Any:
        payment = await service.get_payment(order_id)
        assert payment.status == "captured"
        return payment

    payment = await eventually(captured)
    assert (payment.amount_captured.amount, payment.amount_refunded.amount) == (4499, 0)
    assert (await eventually(lambda: service.published("PaymentCaptured")))["order_id"] == order_id


async def test_a_payment_is_shown_to_its_customer_and_admins_only(service: Service) -> None:
    order_id = new_order_id()
    await service.publish(order_placed(order_id, token="tok_chargeDeclined", total=1500))
    payment = await eventually(lambda: service.get_payment(order_id))
    assert (payment.order_id, payment.status, payment.amount_authorized.amount) == (order_id, "declined", 0)

    assert (await service.get_payment(order_id, user_id=OTHER_USER, roles=("admin",))).status == "declined"
    for user_id, order in ((OTHER_USER, order_id), (USER, new_order_id())):
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await service.get_payment(order, user_id=user_id)
        assert hidden.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await service.get_payment(order_id, user_id=None)
    assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED
