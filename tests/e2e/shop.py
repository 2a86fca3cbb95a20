"""A shopper and an admin as API.md's clients: only HTTP, only the published contract."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

ADDRESS = {"name": "Ada Lovelace", "line1": "12 Analytical Row", "city": "London", "postal_code": "N1 7AA",
           "country": "GB"}


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any


class Client:
    def __init__(self, http: aiohttp.ClientSession, base_url: str, token: str | None = None):
        self.http = http
        self.base_url = base_url
        self.token = token

    async def request(self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None) -> Answer:
        all_headers = dict(headers or {})
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        async with self.http.request(method, self.base_url + path, json=json, headers=all_headers) as response:
            body = await response.json(content_type=None) if response.content_length != 0 else None
            return Answer(response.status, body, response.headers.copy())

    async def sign_up(self) -> Client:
        email = f"shopper-{uuid.uuid4().hex[:12]}@agora.test"
        registered = await self.request("POST", "/api/v1/auth/register",
                                        json={"email": email, "password": "correct horse battery", "name": "Shopper"})
        assert registered.status == 201, registered.body
        return await self.log_in(email, "correct horse battery")

    async def log_in(self, email: str, password: str) -> Client:
        tokens = await self.request("POST", "/api/v1/auth/login", json={"email": email, "password": password})
        assert tokens.status == 200, tokens.body
        return Client(self.http, self.base_url, tokens.body["access_token"])

    async def place(self, key: str | None = None, token: str = "tok_visa") -> Answer:
        return await self.request("POST", "/api/v1/orders", json={"shipping_address": ADDRESS, "payment": {"token": token}},
                                  headers={"Idempotency-Key": key or uuid.uuid4().hex})

    async def until_settled(self, order_id: str, *, wanted: frozenset[str] = frozenset({"CONFIRMED", "SHIPPED", "CANCELLED"}),
                            timeout: float = 30.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            order = await self.request("GET", f"/api/v1/orders/{order_id}")
            assert order.status == 200, order.body
            if order.body["status"] in wanted:
                return order.body
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"order {order_id} still {order.body['status']}")
            await asyncio.sleep(0.1)


async def admin_client(http: aiohttp.ClientSession, city: Any, email: str, password: str) -> Client:
    if city.admin_token is None:
        city.admin_token = (await Client(http, city.base_url).log_in(email, password)).token
    return Client(http, city.base_url, city.admin_token)


async def new_product(admin: Client, *, stock: int, price: int = 1250) -> str:
    created = await admin.request("POST", "/api/v1/admin/products", json={
        "sku": f"TEST-{uuid.uuid4().hex[:10]}", "name": "Test Teapot", "description": "For tests",
        "price": {"amount": price, "currency": "USD"}, "categories": ["kitchen"],
    })
    assert created.status == 201, created.body
    stocked = await admin.request("PUT", f"/api/v1/admin/inventory/{created.body['id']}", json={"quantity": stock})
    assert stocked.status == 200, stocked.body
    return created.body["id"]
