"""The cart through its real gRPC server: the user from the token, prices from catalog."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import grpc
import pytest
from agora.cart.v1 import cart_pb2
from redis.asyncio import Redis

from chassis.grpc import FIELD_VIOLATIONS_KEY
from chassis.resilience.grpc_errors import unavailable_dependency
from tests.cart.conftest import (
    Cart,
    FakeCatalog,
    cart_connection_name,
    cart_settings,
    new_id,
    order_placed,
    serving,
)

ADA, BOB = "user-ada", "user-bob"


async def rpc_error(call) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def lines(answer: cart_pb2.Cart) -> list[tuple[str, int, int, int]]:
    return [(item.name, item.quantity, item.unit_price.amount, item.line_total.amount) for item in answer.items]


async def set_item(cart: Cart, user: str, product_id: str, quantity: int) -> cart_pb2.Cart:
    return await cart.call("SetItem", cart_pb2.SetItemRequest(product_id=product_id, quantity=quantity), user=user)


async def test_a_new_cart_is_empty(cart: Cart) -> None:
    answer = await cart.call("GetCart", cart_pb2.GetCartRequest(), user=ADA)
    assert list(answer.items) == [] and (answer.total.amount, answer.total.currency) == (0, "USD")


async def test_items_are_shown_with_catalogs_names_and_prices(cart: Cart) -> None:
    cup, jug = cart.catalog.add("Espresso cup", 1250), cart.catalog.add("Milk jug", 1999)
    await set_item(cart, ADA, jug, 1)
    answer = await set_item(cart, ADA, cup, 2)

    assert lines(answer) == [("Espresso cup", 2, 1250, 2500), ("Milk jug", 1, 1999, 1999)]
    assert (answer.total.amount, answer.total.currency) == (4499, "USD")
    assert [item.product_id for item in answer.items] == [cup, jug]
    assert await cart.call("GetCart", cart_pb2.GetCartRequest(), user=ADA) == answer


async def test_prices_are_catalogs_at_the_time_the_cart_is_read(cart: Cart) -> None:
    cup = cart.catalog.add("Espresso cup", 1250)
    await set_item(cart, ADA, cup, 2)
    cart.catalog.products[cup].price.amount = 1000

    answer = await cart.call("GetCart", cart_pb2.GetCartRequest(), user=ADA)

    assert lines(answer) == [("Espresso cup", 2, 1000, 2000)] and answer.total.amount == 2000


async def test_quantities_only_answers_without_asking_catalog(cart: Cart) -> None:
    cup, jug = cart.catalog.add("Espresso cup", 1250), cart.catalog.add("Milk jug", 1999)
    await set_item(cart, ADA, jug, 1)
    await set_item(cart, ADA, cup, 2)
    cart.catalog.fail = True  # a priced read would now answer UNAVAILABLE

    answer = await cart.call("GetCart", cart_pb2.GetCartRequest(quantities_only=True), user=ADA)

    assert sorted((item.product_id, item.quantity) for item in answer.items) == sorted([(cup, 2), (jug, 1)])
    assert all(item.name == "" and not item.HasField("unit_price") for item in answer.items)
    assert not answer.HasField("total")
    error = await rpc_error(cart.call("GetCart", cart_pb2.GetCartRequest(), user=ADA))
    assert error.code() is grpc.StatusCode.UNAVAILABLE


async def test_setting_a_quantity_replaces_it_and_zero_removes_the_line(cart: Cart) -> None:
    cup = cart.catalog.add("Espresso cup", 1250)
    await set_item(cart, ADA, cup, 2)
    assert lines(await set_item(cart, ADA, cup, 5)) == [("Espresso cup", 5, 1250, 6250)]
    assert list((await set_item(cart, ADA, cup, 0)).items) == []


async def test_a_product_catalog_does_not_know_is_not_found(cart: Cart) -> None:
    error = await rpc_error(set_item(cart, ADA, new_id(), 1))
    assert error.code() is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("quantity", [-1, 100])
async def test_a_quantity_outside_0_to_99_is_a_field_violation(cart: Cart, quantity: int) -> None:
    cup = cart.catalog.add("Espresso cup", 1250)
    error = await rpc_error(set_item(cart, ADA, cup, quantity))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [v["field"] for v in json.loads(dict(error.trailing_metadata())[FIELD_VIOLATIONS_KEY])] == ["quantity"]


async def test_a_cart_holds_at_most_a_hundred_different_products(cart: Cart) -> None:
    """Each read prices the whole cart in one catalog call, which takes at most 500 ids: past
    that, every read of the cart failed as if catalog were down."""
    products = [cart.catalog.add(f"Cup {number}", 100 + number) for number in range(101)]
    for product in products[:100]:
        await set_item(cart, ADA, product, 1)

    error = await rpc_error(set_item(cart, ADA, products[100], 1))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "a cart holds at most 100 different products"
    assert len((await set_item(cart, ADA, products[0], 3)).items) == 100  # a line it holds still changes
    await set_item(cart, ADA, products[0], 0)
    assert len((await set_item(cart, ADA, products[100], 1)).items) == 100  # and room is made by removing one


async def test_each_user_sees_only_their_own_cart(cart: Cart) -> None:
    cup = cart.catalog.add("Espresso cup", 1250)
    await set_item(cart, ADA, cup, 2)
    assert list((await cart.call("GetCart", cart_pb2.GetCartRequest(), user=BOB)).items) == []


async def test_a_cart_needs_a_user_token(cart: Cart) -> None:
    for method, request in [
        ("GetCart", cart_pb2.GetCartRequest()),
        ("Clear", cart_pb2.ClearRequest()),
        ("SetItem", cart_pb2.SetItemRequest(product_id=new_id(), quantity=1)),
        ("RemoveOrdered", cart_pb2.RemoveOrderedRequest(order_id=new_id())),
    ]:
        error = await rpc_error(cart.call(method, request, user=None))
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_removing_and_clearing(cart: Cart) -> None:
    cup, jug = cart.catalog.add("Espresso cup", 1250), cart.catalog.add("Milk jug", 1999)
    await set_item(cart, ADA, cup, 1)
    await set_item(cart, ADA, jug, 1)

    answer = await cart.call("RemoveItem", cart_pb2.RemoveItemRequest(product_id=cup), user=ADA)
    assert lines(answer) == [("Milk jug", 1, 1999, 1999)]
    answer = await cart.call("RemoveItem", cart_pb2.RemoveItemRequest(product_id=new_id()), user=ADA)
    assert lines(answer) == [("Milk jug", 1, 1999, 1999)]

    await cart.call("Clear", cart_pb2.ClearRequest(), user=ADA)
    assert list((await cart.call("GetCart", cart_pb2.GetCartRequest(), user=ADA)).items) == []


async def test_an_orders_lines_leave_the_callers_cart_once_however_often_orders_asks(cart: Cart) -> None:
    cup, jug = cart.catalog.add("Espresso cup", 1250), cart.catalog.add("Milk jug", 1999)
    await set_item(cart, ADA, cup, 2)
    await set_item(cart, ADA, jug, 1)
    await set_item(cart, BOB, cup, 1)
    ordered = cart_pb2.RemoveOrderedRequest(
        order_id=new_id(), lines=[cart_pb2.OrderedLine(product_id=cup, quantity=2)]
    )

    await cart.call("RemoveOrdered", ordered, user=ADA)
    await set_item(cart, ADA, cup, 1)  # wanted one more since
    await cart.call("RemoveOrdered", ordered, user=ADA)  # asked again, by a retry

    assert lines(await cart.call("GetCart", cart_pb2.GetCartRequest(), user=ADA)) == [
        ("Espresso cup", 1, 1250, 1250), ("Milk jug", 1, 1999, 1999)
    ]
    assert lines(await cart.call("GetCart", cart_pb2.GetCartRequest(), user=BOB)) == [("Espresso cup", 1, 1250, 1250)]


@pytest.mark.parametrize(
    ("order_id", "product_id", "quantity", "field"),
    [("", "p", 1, "order_id"), ("o" * 101, "p", 1, "order_id"), ("o", "p", 0, "lines[0].quantity"), ("o", "", 1, "product_id")],
)
async def test_ordered_lines_that_cannot_be_are_field_violations(
    cart: Cart, order_id: str, product_id: str, quantity: int, field: str
) -> None:
    request = cart_pb2.RemoveOrderedRequest(
        order_id=order_id, lines=[cart_pb2.OrderedLine(product_id=product_id, quantity=quantity)]
    )
    error = await rpc_error(cart.call("RemoveOrdered", request, user=ADA))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [v["field"] for v in json.loads(dict(error.trailing_metadata())[FIELD_VIOLATIONS_KEY])] == [field]


async def test_the_cart_lives_under_the_citys_cart_prefix(cart: Cart, redis: Redis, city: str) -> None:
    cup = cart.catalog.add("Espresso cup", 1250)
    await set_item(cart, ADA, cup, 3)
    assert await redis.hgetall(f"{city}:cart:user:{ADA}") == {cup.encode(): b"3"}


async def test_an_unreachable_catalog_makes_the_cart_unavailable(cart: Cart) -> None:
    cup = cart.catalog.add("Espresso cup", 1250)
    await set_item(cart, ADA, cup, 1)
    cart.catalog.fail = True

    error = await rpc_error(cart.call("GetCart", cart_pb2.GetCartRequest(), user=ADA))

    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert unavailable_dependency(error) == "catalog"  # cart itself is well


async def test_an_order_placed_on_the_bus_empties_the_customers_cart(cart: Cart) -> None:
    cup = cart.catalog.add("Espresso cup", 1250)
    await set_item(cart, ADA, cup, 2)
    await set_item(cart, BOB, cup, 1)
    event = order_placed(ADA, cup, 2)

    await cart.bus.publish(event.to_json(), event.type, msg_id=event.id, headers={})

    async with asyncio.timeout(10):
        while (await cart.call("GetCart", cart_pb2.GetCartRequest(), user=ADA)).items:  # noqa: ASYNC110 (polling the service under test)
            await asyncio.sleep(0.05)
    assert lines(await cart.call("GetCart", cart_pb2.GetCartRequest(), user=BOB)) == [("Espresso cup", 1, 1250, 1250)]


async def test_a_redis_restart_costs_no_request_once_redis_is_back(cart: Cart, redis: Redis, city: str) -> None:
    # A Redis restart closes every connection in the cart's pool; the pool finds out only by
    # using one. Cutting them server-side (CLIENT KILL) is what a restart looks like to the pool.
    cup = cart.catalog.add("Espresso cup", 1250)
    await asyncio.gather(*(set_item(cart, f"user-{n}", cup, 1) for n in range(8)))  # several pooled connections
    name = cart_connection_name(city)
    cut = [client["id"] for client in await redis.client_list() if client["name"] == name]
    assert cut
    for client_id in cut:
        await redis.client_kill_filter(_id=client_id)

    for n in range(8):
        await asyncio.gather(*(set_item(cart, f"user-{m}", cup, 2) for m in range(n + 1)))

    assert lines(await cart.call("GetCart", cart_pb2.GetCartRequest(), user="user-7")) == [
        ("Espresso cup", 2, 1250, 2500)
    ]


async def test_a_cart_whose_redis_is_down_is_unavailable_not_broken(
    city: str, catalog: tuple[FakeCatalog, int], own_redis: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    # Orders retries an UNAVAILABLE cart, never an INTERNAL one.
    fake, port = catalog
    redis_url, server = own_redis
    async with serving(cart_settings(city, tmp_path, redis_url, port), fake) as cart:
        cup = fake.add("Espresso cup", 1250)
        await set_item(cart, "user-1", cup, 1)
        server.terminate()
        server.wait(10)

        refused = await rpc_error(cart.call("GetCart", cart_pb2.GetCartRequest(), user="user-1"))
        assert refused.code() == grpc.StatusCode.UNAVAILABLE
        assert "redis" not in (refused.details() or "").lower(), "no internals in the answer"
