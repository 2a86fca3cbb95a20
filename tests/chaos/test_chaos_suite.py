"""The short chaos run, in a city of its own: checkout load while every service is killed once
and NATS, Postgres and Redis are restarted; healed, every invariant holds. Then the same city is
broken on purpose from the test side (its databases, its broker), and each checker must name the
breakage. The long run: `.venv/bin/python -m tests.chaos.suite --minutes 10` (docs/chaos.md)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import aiohttp
import pytest

from tests.chaos import checkers, suite
from tests.chaos.snapshot import CityReader
from tests.e2e.conftest import City, running_city
from tests.e2e.shop import Client

pytestmark = pytest.mark.chaos

SECONDS_UNDER_CHAOS = 0.0  # one round, each fault as soon as the last one is done
SHOPPERS = 8


@pytest.fixture(scope="module")
def chaos_city() -> Iterator[City]:
    with running_city(prefix="agora-chaos-", **suite.chaos_environment()) as city:
        yield city
    assert not suite.leftovers(city.home), "processes left after agora down"


def test_every_invariant_holds_after_every_service_is_killed_and_the_servers_restarted(chaos_city: City) -> None:
    started = time.monotonic()
    report, shop = asyncio.run(suite.run(chaos_city, seconds=SECONDS_UNDER_CHAOS, shoppers=SHOPPERS, warmup=2.0))
    print(json.dumps({**report.as_dict(), "wall_seconds": round(time.monotonic() - started, 1)}, indent=1))
    faults = {(fault.action, fault.target) for fault in report.faults}
    assert {("kill", service) for service in CityReader(chaos_city.home).services()} <= faults
    if suite.can_stop_and_start(chaos_city):
        assert {("restart", server) for server in suite.INFRA} <= faults
    assert all(fault.ok for fault in report.faults), report.notes
    assert len(report.load.accepted) > 20, report.as_dict()
    assert report.settled_after is not None and report.settled_after <= suite.SETTLE_SECONDS
    assert report.ok, json.dumps(report.as_dict()["violations"], indent=1)
    chaos_city.shop = shop  # type: ignore[attr-defined]  # for the sabotage below


def test_each_checker_catches_its_breakage_in_a_real_city(chaos_city: City) -> None:
    shop = getattr(chaos_city, "shop", None)
    if shop is None:
        pytest.skip("the chaos run did not get as far as a consistent city")
    found = asyncio.run(sabotage(chaos_city, shop.stock))
    print(json.dumps({name: [v.as_dict() for v in vs] for name, vs in found.items()}, indent=1))
    for name, violations in found.items():
        assert violations, f"{name} did not notice its sabotage"


async def sabotage(city: City, stock: dict[str, int]) -> dict[str, list[checkers.Violation]]:
    """Breaks one thing per invariant, each the way a bug would, and returns what the checker of
    that invariant then reports about exactly the broken thing."""
    reader = CityReader(city.home)
    orders = [order for order in await reader.orders() if order.status == "SHIPPED"]
    doubled, short_changed, unsettled = orders[0], orders[1], orders[2]
    mails_before = len(reader.emails())

    # A producer that emits ShipmentDispatched twice under two event ids (an inbox cannot tell
    # them apart): the copy goes the whole way, outbox > relay > NATS > notifications > SMTP.
    async with reader.database("shipping") as conn:
        copied = await conn.execute(
            """INSERT INTO outbox (event_id, event_type, envelope, headers)
               SELECT $2::uuid, event_type, jsonb_set(envelope, '{id}', to_jsonb($2::text)), headers FROM outbox
               WHERE event_type = 'agora.shipping.ShipmentDispatched.v1' AND envelope ->> 'subject' = $1""",
            doubled.id, str(uuid.uuid4()))
        assert copied == "INSERT 0 1"
    for _ in range(100):  # the copy's email, or 20 s
        if len(reader.emails()) > mails_before:
            break
        await asyncio.sleep(0.2)

    # A refund of one cent nobody asked for; a unit of stock that appeared without a movement;
    # an order that went back to PENDING and stays there.
    async with reader.database("payments") as conn:
        await conn.execute("UPDATE payments SET amount_refunded = amount_refunded + 1 WHERE order_id = $1",
                           short_changed.id)
    product = next(iter(stock))
    async with reader.database("inventory") as conn:
        await conn.execute("UPDATE stock SET available = available + 1 WHERE product_id = $1", product)
    async with reader.database("orders") as conn:
        await conn.execute("UPDATE orders SET status = 'PENDING' WHERE id = $1", unsettled.id)

    # A consumer that is down while events arrive for it: notifications stopped, a customer signs up.
    stopped = suite.can_stop_and_start(city)
    if stopped:
        city.agora("chaos", "stop", "notifications")
        async with aiohttp.ClientSession() as http:
            await Client(http, city.base_url).sign_up()
        await asyncio.sleep(1.0)
    try:
        snapshot = await reader.snapshot(initial_stock=stock)
    finally:
        if stopped:
            city.agora("chaos", "start", "notifications")
    found = checkers.check(snapshot)
    caught = {
        "at_most_once": [v for v in found["at_most_once"]
                         if v.subject == doubled.id and "2 different order_shipped emails" in v.detail],
        "money_balances": [v for v in found["money_balances"] if v.subject == short_changed.id],
        "stock_balances": [v for v in found["stock_balances"] if v.subject == product],
        "orders_settle": [v for v in found["orders_settle"] if v.subject == unsettled.id],
    }
    if stopped:
        caught["events_drained"] = [v for v in found["events_drained"] if v.subject.endswith("/notifications")]
    return caught
