"""Schemathesis against the running gateway's own OpenAPI document: every operation fuzzed with
Schemathesis' default checks (no 5xx, responses match the documented schema, status codes and
content types documented), first as a shopper, then the admin routes as the admin.

The schema loads lazily from a fixture, so collection needs no running city. The order event
stream is left out: it stays open until the order settles.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, City
from tests.e2e.shop import Client, admin_client

pytestmark = pytest.mark.e2e

ENDLESS_STREAM = "/api/v1/orders/{order_id}/events"
FUZZ = settings(max_examples=15, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


async def _shopper_token(city: City) -> str:
    async with aiohttp.ClientSession() as http:
        return (await Client(http, city.base_url).sign_up()).token


async def _admin_token(city: City) -> str:
    async with aiohttp.ClientSession() as http:
        return (await admin_client(http, city, ADMIN_EMAIL, ADMIN_PASSWORD)).token


def _load(city: City) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_url(city.base_url + "/api/openapi.json").exclude(path=ENDLESS_STREAM)


@pytest.fixture(scope="session")
def gateway_schema(city: City) -> schemathesis.schemas.BaseSchema:
    return _load(city)


@pytest.fixture(scope="session")
def admin_schema(city: City) -> schemathesis.schemas.BaseSchema:
    return _load(city).include(path_regex=r"^/api/v1/admin/")


@pytest.fixture(scope="session")
def shopper_token(city: City) -> str:
    return asyncio.run(_shopper_token(city))


@pytest.fixture(scope="session")
def admin_token(city: City) -> str:
    return asyncio.run(_admin_token(city))


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """Schemathesis' lazy loader reads and renames `node._nodeid`, which pytest 9 no longer has."""
    request.node._nodeid = request.node.nodeid


as_shopper = schemathesis.pytest.from_fixture("gateway_schema")
as_admin = schemathesis.pytest.from_fixture("admin_schema")


@as_shopper.parametrize()
@FUZZ
def test_every_operation_keeps_its_documented_promises(case: schemathesis.Case, shopper_token: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {shopper_token}"})


@as_admin.parametrize()
@FUZZ
def test_admin_operations_keep_their_documented_promises(case: schemathesis.Case, admin_token: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {admin_token}"})
