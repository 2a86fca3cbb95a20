"""Zero trust, tried from outside: forged tokens, other users' data, roles, limits, leaks.

OWASP API Security Top 10 (2023) items each test speaks to are named in docs/security.md.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import grpc
import jwt
import nats
import nats.errors
import pytest
from agora.orders.v1 import orders_pb2, orders_pb2_grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.js.api import ConsumerConfig, StreamConfig

from agora_cli.config import Home
from agora_cli.infra import nats_inbox_prefix, nats_login
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, City
from tests.e2e.shop import Client, admin_client, new_product

pytestmark = pytest.mark.e2e


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def shopper(city: City, http: aiohttp.ClientSession) -> Client:
    return await Client(http, city.base_url).sign_up()


def _b64(value: dict[str, Any] | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def signing_key(city: City) -> Any:
    """The live signing key, unsealed the way identity does: what an insider would need to mint tokens."""
    from identity.tokens import KeyVault, load_or_create_kek

    kek = load_or_create_kek(city.home / "secrets" / "identity-signing.kek")
    password = (city.home / "secrets" / "identity.password").read_text().strip()
    status = city.status()
    postgres_url = next(entry["url"] for entry in status["infra"] if entry["name"] == "postgres")
    host_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    conn = await asyncpg.connect(f"postgresql://agora_identity:{password}@{host_port}/agora_identity")
    try:
        row = await conn.fetchrow("SELECT kid, sealed_private_key FROM signing_keys ORDER BY created_at DESC LIMIT 1")
    finally:
        await conn.close()
    return KeyVault(kek).open(row["kid"], row["sealed_private_key"])


async def forged_tokens(city: City, real: str) -> dict[str, str]:
    header, payload, signature = real.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    key = await signing_key(city)
    now = int(time.time())
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = _b64({"alg": "HS256", "typ": "JWT", "kid": key.kid})
    hs_body = _b64(claims | {"roles": ["admin"]})
    hs_signature = _b64(hmac.new(public_pem, f"{hs_header}.{hs_body}".encode(), hashlib.sha256).digest())
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': key.kid})}.{_b64(claims)}.",
        "HS256 with the public key": f"{hs_header}.{hs_body}.{hs_signature}",
        "unknown kid": jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "nope"}),
        "tampered claims": f"{header}.{_b64(claims | {'roles': ['customer', 'admin']})}.{signature}",
        "expired": key.sign(claims | {"iat": now - 3600, "exp": now - 600}),
        "wrong aud": key.sign(claims | {"aud": "someone-else"}),
        "wrong iss": key.sign(claims | {"iss": "https://evil.example"}),
        "garbage": "not-a-token",
    }


async def test_forged_tokens_get_401_at_the_gateway_and_are_refused_by_the_service_itself(
    city: City, shopper: Client, http: aiohttp.ClientSession
) -> None:
    assert shopper.token
    forged = await forged_tokens(city, shopper.token)
    tls = city.home / "tls"
    credentials = grpc.ssl_channel_credentials(
        (tls / "ca.pem").read_bytes(), (tls / "gateway.key").read_bytes(), (tls / "gateway.pem").read_bytes()
    )
    orders_address = next(s["grpc"] for s in city.status()["services"] if s["name"] == "orders")
    async with grpc.aio.secure_channel(orders_address, credentials,
                                       options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
        orders = orders_pb2_grpc.OrdersServiceStub(channel)
        for name, token in forged.items():
            answer = await Client(http, city.base_url, token).request("GET", "/api/v1/me")
            assert answer.status == 401, name
            assert answer.headers["WWW-Authenticate"].startswith("Bearer"), name
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await orders.ListOrders(orders_pb2.ListOrdersRequest(), metadata=[("authorization", f"Bearer {token}")],
                                        timeout=5)
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED, name
        real = await orders.ListOrders(orders_pb2.ListOrdersRequest(),
                                       metadata=[("authorization", f"Bearer {shopper.token}")], timeout=5)
        assert real.total == 0


async def test_a_service_refuses_callers_the_topology_does_not_allow(city: City, shopper: Client) -> None:
    tls = city.home / "tls"
    orders_address = next(s["grpc"] for s in city.status()["services"] if s["name"] == "orders")
    for caller in ("payments", "cli"):  # the operator's commands call identity and analytics only
        credentials = grpc.ssl_channel_credentials(
            (tls / "ca.pem").read_bytes(), (tls / f"{caller}.key").read_bytes(), (tls / f"{caller}.pem").read_bytes()
        )
        async with grpc.aio.secure_channel(orders_address, credentials,
                                           options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await orders_pb2_grpc.OrdersServiceStub(channel).ListOrders(
                    orders_pb2.ListOrdersRequest(), metadata=[("authorization", f"Bearer {shopper.token}")], timeout=5)
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED, caller
    async with grpc.aio.insecure_channel(orders_address) as plain:
        with pytest.raises(grpc.aio.AioRpcError) as no_tls:
            await orders_pb2_grpc.OrdersServiceStub(plain).ListOrders(orders_pb2.ListOrdersRequest(), timeout=3)
    assert no_tls.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_only_a_service_itself_may_publish_its_events_on_the_bus(city: City) -> None:
    """A forged OrderCancelled would make payments refund and inventory restock an order that
    shipped: NATS takes no one without a login, and each service's login publishes only its own.
    Nor may a service change a stream's settings, make a consumer, pull from another's, or read a
    stream message by message, as analytics' replay does: events carry addresses and emails."""
    entry = next(e for e in city.status()["infra"] if e["name"] == "nats")
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(entry["url"], allow_reconnect=False, connect_timeout=2)

    refused: list[Exception] = []

    async def on_error(error: Exception) -> None:
        refused.append(error)

    city_id = city.env.get("AGORA_CITY", "agora")
    payments = await nats.connect(nats_login(Home(city.home), entry["url"], "payments"), error_cb=on_error,
                                  inbox_prefix=nats_inbox_prefix("payments"))  # where the server answers it
    try:
        js = payments.jetstream(timeout=1)
        with pytest.raises(nats.errors.TimeoutError):  # the server drops it and says why
            await js.publish(f"{city_id}.orders.OrderCancelled", b"{}", headers={"Nats-Msg-Id": uuid.uuid4().hex})
        orders = f"{city_id}_ORDERS".upper()
        with pytest.raises(nats.errors.TimeoutError):  # nor may it erase the history others rebuild from
            await js.purge_stream(orders)
        with pytest.raises(nats.errors.TimeoutError):  # or age it out, or republish it as another's
            await js.update_stream(StreamConfig(name=orders, subjects=[f"{city_id}.orders.>"], max_age=1))
        with pytest.raises(nats.errors.TimeoutError):  # nor take another's deliveries
            await payments.request(f"$JS.API.CONSUMER.MSG.NEXT.{orders}.inventory", b'{"batch": 1}', timeout=1)
        with pytest.raises(nats.errors.TimeoutError):  # nor make a consumer push them onto another's subject
            await js.add_consumer(orders, ConsumerConfig(durable_name="payments", deliver_subject=f"{city_id}.cart.x"))
        with pytest.raises(nats.errors.TimeoutError):  # nor read events it does not handle
            await js.get_msg(orders, seq=1, next=True)
        for inbox in ("_INBOX.>", "_INBOX_notifications.>"):  # nor hear what answers another's pulls
            await payments.subscribe(inbox)
        await payments.flush()
        assert (await js.stream_info(orders)).config.max_age > 1  # what it may do, it can
        await asyncio.sleep(0.2)  # the server refuses a subscription asynchronously
    finally:
        await payments.close()
    violations = [str(error).lower() for error in refused]
    for refused_subject in ("ordercancelled", "stream.purge", "stream.update", "msg.next", "consumer.durable.create",
                            "stream.msg.get"):
        assert any("permissions violation for publish to" in error and refused_subject in error for error in violations)
    for refused_inbox in ('"_inbox.>"', '"_inbox_notifications.>"'):
        assert any("permissions violation for subscription to" in error and refused_inbox in error for error in violations)


async def test_a_client_cannot_set_roles_price_status_or_user(city: City, http: aiohttp.ClientSession) -> None:
    anonymous = Client(http, city.base_url)
    email = f"sneaky-{uuid.uuid4().hex[:8]}@agora.test"
    registered = await anonymous.request("POST", "/api/v1/auth/register", json={
        "email": email, "password": "long enough pw", "name": "Sneaky", "roles": ["admin"], "user_id": "u-1"})
    assert registered.status == 201 and registered.body["user_id"] != "u-1"
    sneaky = await anonymous.log_in(email, "long enough pw")
    me = await sneaky.request("GET", "/api/v1/me")
    assert me.body["roles"] == ["customer"]
    admin = await admin_client(http, city, ADMIN_EMAIL, ADMIN_PASSWORD)
    product = await new_product(admin, stock=5, price=4200)
    cart = await sneaky.request("PUT", f"/api/v1/cart/items/{product}", json={
        "quantity": 1, "unit_price": {"amount": 1, "currency": "USD"}, "price": 1})
    assert cart.body["total"]["amount"] == 4200
    placed = await sneaky.request("POST", "/api/v1/orders", json={
        "shipping_address": {"name": "S", "line1": "1 Road", "city": "X", "postal_code": "1", "country": "GB"},
        "payment": {"token": "tok_visa"}, "status": "SHIPPED", "total": {"amount": 1, "currency": "USD"},
        "user_id": me.body["user_id"] + "x"}, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert placed.status == 202 and placed.body["status"] == "PENDING"
    assert placed.body["total"]["amount"] == 4200


async def test_customers_are_kept_out_of_admin_routes(shopper: Client) -> None:
    for method, path, body in [
        ("POST", "/api/v1/admin/products", {"sku": "X", "name": "X", "description": "", "price": {"amount": 1, "currency": "USD"}, "categories": ["toys"]}),
        ("PUT", "/api/v1/admin/inventory/00000000-0000-0000-0000-000000000000", {"quantity": 5}),
        ("GET", "/api/v1/admin/inventory/00000000-0000-0000-0000-000000000000", None),
        ("GET", "/api/v1/admin/sales", None),
    ]:
        assert (await shopper.request(method, path, json=body)).status == 403, path


async def test_errors_leak_no_internals(city: City, http: aiohttp.ClientSession) -> None:
    async with http.post(city.base_url + "/api/v1/auth/login", data=b"\xff\xfe{", headers={"Content-Type": "application/json"}) as answer:
        assert answer.status in (400, 422)
        assert answer.headers["Content-Type"] == "application/problem+json"
        text = await answer.text()
        assert "Traceback" not in text and "File \"" not in text
        assert "server" not in {key.lower() for key in answer.headers}


async def test_login_brute_force_is_stopped_within_twenty_attempts(city: City, http: aiohttp.ClientSession) -> None:
    victim = f"victim-{uuid.uuid4().hex[:8]}@agora.test"
    statuses = []
    for attempt in range(21):
        async with http.post(city.base_url + "/api/v1/auth/login",
                             json={"email": victim, "password": f"guess-{attempt}"}) as answer:
            statuses.append(answer.status)
            if answer.status == 429:
                assert int(answer.headers["Retry-After"]) >= 1
                # The login limit's own figures, not the edge-wide limit's as well.
                assert answer.headers.getall("RateLimit-Remaining") == ["0"]
                assert len(answer.headers.getall("RateLimit-Limit")) == 1
                break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}


async def test_login_answers_count_down_the_limit_that_refuses_them(city: City, http: aiohttp.ClientSession) -> None:
    """A client told how many tries it has left is refused when they run out, not while the
    headers still promise hundreds (the edge-wide limit's); a right password gives its try back."""
    user = await Client(http, city.base_url).sign_up()
    email = (await user.request("GET", "/api/v1/me")).body["email"]
    remaining = []
    for attempt in range(21):
        async with http.post(city.base_url + "/api/v1/auth/login",
                             json={"email": email, "password": f"guess-{attempt}"}) as answer:
            limits = {answer.headers["RateLimit-Limit"]}
            remaining.append((answer.status, int(answer.headers["RateLimit-Remaining"])))
            if answer.status == 429:
                break
    assert limits == {"20"}  # the city's login limit
    assert remaining == [(401, left) for left in range(19, -1, -1)] + [(429, 0)]


async def test_every_spelling_of_an_account_counts_against_one_login_limit(city: City, http: aiohttp.ClientSession) -> None:
    """Identity finds `JOSÉ@`, `josé@` and `josé@` with a combining accent to be one account, so a
    guesser alternating them is stopped as soon as with one spelling."""
    local = f"josé-{uuid.uuid4().hex[:8]}"
    spellings = [f"{variant}@agora.test" for variant in (
        local, local.upper(), unicodedata.normalize("NFD", local), f" {unicodedata.normalize('NFD', local.upper())}",
    )]
    statuses = []
    for attempt in range(21):
        async with http.post(city.base_url + "/api/v1/auth/login",
                             json={"email": spellings[attempt % 4], "password": f"guess-{attempt}"}) as answer:
            statuses.append(answer.status)
            if answer.status == 429:
                break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}


async def test_only_wrong_guesses_count_against_the_login_limit(city: City, http: aiohttp.ClientSession) -> None:
    """A client that knows the password (a test suite signing the admin in per test, say) is not
    locked out, while a guesser still is (above)."""
    user = await Client(http, city.base_url).sign_up()
    me = await user.request("GET", "/api/v1/me")
    statuses = []
    for _ in range(25):  # more than the city's login limit of 20 a minute
        async with http.post(city.base_url + "/api/v1/auth/login",
                             json={"email": me.body["email"], "password": "correct horse battery"}) as answer:
            statuses.append(answer.status)
    assert set(statuses) == {200}


def test_no_password_or_token_reaches_the_logs(city: City) -> None:
    logs = "\n".join(path.read_text(errors="replace") for path in Path(city.home / "logs").glob("*.log"))
    for secret in (ADMIN_PASSWORD, "correct horse battery", "long enough pw", "tok_visa"):
        assert secret not in logs, secret
    assert "eyJ" not in logs  # no JWT (their header always starts so)


async def test_the_payments_role_cannot_reach_the_orders_database(city: City) -> None:
    password = (city.home / "secrets" / "payments.password").read_text().strip()
    postgres_url = next(entry["url"] for entry in city.status()["infra"] if entry["name"] == "postgres")
    host_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    own = await asyncpg.connect(f"postgresql://agora_payments:{password}@{host_port}/agora_payments")
    await own.close()
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await asyncpg.connect(f"postgresql://agora_payments:{password}@{host_port}/agora_orders")
