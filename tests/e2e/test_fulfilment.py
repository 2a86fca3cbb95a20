"""Fulfilment end to end, as a client of API.md sees it: an order shipped by the carrier, the
emails the shopper receives, following an order, and a cancel racing the dispatch."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, City
from tests.e2e.shop import ADDRESS, Client, admin_client, new_product

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
DISPATCH_DELAY = 1.0  # AGORA_DISPATCH_DELAY_SECONDS in the city fixture


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def admin(city: City, http: aiohttp.ClientSession) -> Client:
    return await admin_client(http, city, ADMIN_EMAIL, ADMIN_PASSWORD)


async def sign_up(city: City, http: aiohttp.ClientSession) -> tuple[Client, str]:
    """A new shopper, signed in, and the address their email goes to."""
    email = f"shopper-{uuid.uuid4().hex[:12]}@agora.test"
    anonymous = Client(http, city.base_url)
    registered = await anonymous.request(
        "POST", "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Shopper"}
    )
    assert registered.status == 201, registered.body
    return await anonymous.log_in(email, PASSWORD), email


async def place_one(shopper: Client, product: str) -> str:
    cart = await shopper.request("PUT", f"/api/v1/cart/items/{product}", json={"quantity": 1})
    assert cart.status == 200, cart.body
    placed = await shopper.place()
    assert placed.status == 202 and placed.body["status"] == "PENDING", placed.body
    return placed.body["order_id"]


async def details(shopper: Client, order_id: str) -> dict[str, Any]:
    answer = await shopper.request("GET", f"/api/v1/orders/{order_id}")
    assert answer.status == 200, answer.body
    return answer.body


def mail_to(city: City, address: str) -> list[EmailMessage]:
    """Every message the city's SMTP sink stored for `address`, oldest first."""
    parser = BytesParser(policy=policy.default)
    messages = [parser.parsebytes(path.read_bytes()) for path in sorted((city.home / "mail").glob("*.eml"))]
    return [message for message in messages if address in str(message["To"])]


async def test_an_order_is_confirmed_then_shipped_and_the_shopper_gets_exactly_three_emails(
    city: City, http: aiohttp.ClientSession, admin: Client
) -> None:
    shopper, email = await sign_up(city, http)
    order_id = await place_one(shopper, await new_product(admin, stock=2))

    order = await shopper.until_settled(order_id, wanted=frozenset({"SHIPPED", "CANCELLED"}))

    assert [change["status"] for change in order["history"]] == ["PENDING", "CONFIRMED", "SHIPPED"]
    shipment = (await details(shopper, order_id))["shipment"]
    assert shipment["status"] == "dispatched" and shipment["carrier"] == "parcelfast"
    assert shipment["tracking_number"].startswith("PF") and len(shipment["tracking_number"]) == 11
    deadline = asyncio.get_running_loop().time() + 20
    while len(mail_to(city, email)) < 3 and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 (files)
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)  # a duplicate would arrive about now
    subjects = sorted(message["Subject"] for message in mail_to(city, email))
    assert subjects == sorted(
        [
            "Welcome to Agora",
            "Your Agora order is confirmed (12.50 USD)",
            f"Your Agora order has shipped (tracking {shipment['tracking_number']})",
        ]
    )
    for message in mail_to(city, email)[1:]:
        assert order_id in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def status_events(shopper: Client, order_id: str) -> AsyncIterator[dict[str, Any]]:
    """The orders the event stream sends, until the server ends it."""
    url = f"{shopper.base_url}/api/v1/orders/{order_id}/events"
    async with shopper.http.get(url, headers={"Authorization": f"Bearer {shopper.token}"}) as response:
        assert response.status == 200 and response.content_type == "text/event-stream"
        event = None
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "status":
                yield json.loads(line.removeprefix("data: "))


async def test_following_an_order_streams_each_status_as_it_happens_and_then_ends(
    city: City, http: aiohttp.ClientSession, admin: Client
) -> None:
    shopper, _ = await sign_up(city, http)
    order_id = await place_one(shopper, await new_product(admin, stock=2))

    async with asyncio.timeout(30):  # the stream ends by itself after SHIPPED
        orders = [order async for order in status_events(shopper, order_id)]

    statuses = [order["status"] for order in orders]
    # The first event is the status when the stream opened: PENDING, unless the saga was quicker.
    assert statuses in (["PENDING", "CONFIRMED", "SHIPPED"], ["CONFIRMED", "SHIPPED"])
    assert {order["order_id"] for order in orders} == {order_id}
    assert [change["status"] for change in orders[-1]["history"]] == ["PENDING", "CONFIRMED", "SHIPPED"]


async def cancel_after(shopper: Client, order_id: str, delay: float) -> int:
    """The cancel's answer: 202 or 409; a 503 is retried as API.md's clients do."""
    await asyncio.sleep(delay)
    for _ in range(5):
        answer = await shopper.request("POST", f"/api/v1/orders/{order_id}/cancel")
        if answer.status != 503:
            assert answer.status in (202, 409), answer.body
            return answer.status
        await asyncio.sleep(0.5)
    raise AssertionError(f"the cancel of {order_id} never got through")


async def settled_money(shopper: Client, order_id: str, wanted: set[str]) -> dict[str, Any]:
    """The order's details once payments has settled its money as `wanted`."""
    for _ in range(100):
        order = await details(shopper, order_id)
        if order["payment"] and order["payment"]["status"] in wanted:
            return order
        await asyncio.sleep(0.1)
    raise AssertionError(f"payment of {order_id} is {order['payment']}, not one of {wanted}")


async def test_a_cancel_racing_the_dispatch_either_cancels_or_ships_never_both(
    city: City, http: aiohttp.ClientSession, admin: Client
) -> None:
    # From the moment the order is confirmed (the parcel leaves DISPATCH_DELAY after shipping
    # books it) to well after it left, the sharpest moments around the delay itself.
    delays = [0.0, 0.7, 0.9, 1.0, 1.1, 1.2, 1.4, 3.5]
    product = await new_product(admin, stock=len(delays))
    shoppers = [shopper for shopper, _ in await asyncio.gather(*(sign_up(city, http) for _ in delays))]
    order_ids = await asyncio.gather(*(place_one(shopper, product) for shopper in shoppers))

    async def confirmed_then_cancelled(shopper: Client, order_id: str, delay: float) -> int:
        confirmed = await shopper.until_settled(order_id, wanted=frozenset({"CONFIRMED", "SHIPPED", "CANCELLED"}))
        assert confirmed["status"] == "CONFIRMED", confirmed
        return await cancel_after(shopper, order_id, delay)

    answers = await asyncio.gather(
        *(
            confirmed_then_cancelled(shopper, order_id, delay)
            for shopper, order_id, delay in zip(shoppers, order_ids, delays, strict=True)
        )
    )

    for shopper, order_id, answer in zip(shoppers, order_ids, answers, strict=True):
        order = await shopper.until_settled(order_id, wanted=frozenset({"SHIPPED", "CANCELLED"}))
        history = [change["status"] for change in order["history"]]
        if answer == 202:
            assert history == ["PENDING", "CONFIRMED", "CANCELLED"]
            assert order["status_reason"] == "customer_request"
            order = await settled_money(shopper, order_id, {"refunded", "voided"})
            assert order["shipment"] is None or order["shipment"]["status"] == "cancelled"
        else:
            assert history == ["PENDING", "CONFIRMED", "SHIPPED"]
            order = await settled_money(shopper, order_id, {"captured"})
            assert order["shipment"]["status"] == "dispatched" and order["shipment"]["tracking_number"]
    await asyncio.sleep(DISPATCH_DELAY + 0.5)  # a cancelled parcel that still left would show by now
    for shopper, order_id, answer in zip(shoppers, order_ids, answers, strict=True):
        order = await details(shopper, order_id)
        assert order["status"] == ("CANCELLED" if answer == 202 else "SHIPPED")
        if answer == 202:
            assert order["shipment"] is None or order["shipment"]["status"] == "cancelled"
    assert sorted(set(answers)) == [202, 409]


async def test_one_request_id_follows_a_checkout_through_every_services_logs(
    city: City, http: aiohttp.ClientSession, admin: Client
) -> None:
    """The id of the request that placed the order names the log lines of every step it caused,
    through the events of the saga and the shipment's later dispatch."""
    shopper, _ = await sign_up(city, http)
    product = await new_product(admin, stock=2)
    assert (await shopper.request("PUT", f"/api/v1/cart/items/{product}", json={"quantity": 1})).status == 200
    request_id = f"checkout-{uuid.uuid4().hex}"
    placed = await shopper.request(
        "POST", "/api/v1/orders", json={"shipping_address": ADDRESS, "payment": {"token": "tok_visa"}},
        headers={"Idempotency-Key": uuid.uuid4().hex, "X-Request-Id": request_id},
    )
    assert placed.status == 202 and placed.headers["X-Request-Id"] == request_id
    await shopper.until_settled(placed.body["order_id"], wanted=frozenset({"SHIPPED"}))

    expected = {
        "orders": {"order_placed", "order_advanced"},
        "payments": {"payment_recorded"},
        "shipping": {"shipment_created", "shipment_dispatched"},
        "notifications": {"email_sent"},
    }

    def logged() -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for service in expected:
            for path in (city.home / "logs").glob(f"{service}-*.log"):
                for line in path.read_text(errors="replace").splitlines():
                    if request_id in line and line.startswith("{"):
                        found.setdefault(service, set()).add(json.loads(line)["event"])
        return found

    deadline = asyncio.get_running_loop().time() + 10
    while not all(names <= logged().get(service, set()) for service, names in expected.items()):
        assert asyncio.get_running_loop().time() < deadline, logged()
        await asyncio.sleep(0.2)
