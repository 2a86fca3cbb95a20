"""Orders' gRPC API through its real server, with cart, catalog and shipping answering over gRPC."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from agora.orders.v1 import orders_pb2

from chassis.resilience.grpc_errors import unavailable_dependency
from orders import repository
from tests.orders.conftest import ADDRESS, Orders, confirm, rpc_error, violations


def fill_cart(orders: Orders, user: str, *lines: tuple[str, int]) -> None:
    orders.shop.carts[user] = list(lines)


async def test_placing_prices_the_cart_from_the_catalog_and_answers_it_pending(orders: Orders):
    cup = orders.shop.add_product("Espresso cup", 1250)
    jug = orders.shop.add_product("Milk jug", 1999)
    fill_cart(orders, "ada", (cup, 2), (jug, 1))

    order = await orders.place("ada")

    assert order.status == "PENDING" and order.status_reason == ""
    assert [(i.product_id, i.name, i.quantity, i.unit_price.amount, i.line_total.amount) for i in order.items] == [
        (cup, "Espresso cup", 2, 1250, 2500),
        (jug, "Milk jug", 1, 1999, 1999),
    ]
    assert (order.total.amount, order.total.currency) == (4499, "USD")
    assert orders.shop.cart_reads == [True]  # cart need not ask catalog for prices orders ignores
    assert order.shipping_address == ADDRESS
    assert [change.status for change in order.history] == ["PENDING"]
    assert order.created_at.endswith("Z") and order.created_at == order.updated_at
    assert await orders.get("ada", order.order_id) == order


async def test_placing_publishes_order_placed_with_the_token_for_payments(orders: Orders):
    cup = orders.shop.add_product("Espresso cup", 1250)
    fill_cart(orders, "ada", (cup, 3))

    order = await orders.place("ada", token="tok_mastercard")

    assert await orders.published("OrderPlaced") == [
        {
            "order_id": order.order_id,
            "user_id": "ada",
            "items": [
                {
                    "product_id": cup,
                    "name": "Espresso cup",
                    "quantity": 3,
                    "unit_price": {"amount": 1250, "currency": "USD"},
                }
            ],
            "total": {"amount": 3750, "currency": "USD"},
            "payment_token": "tok_mastercard",
            "shipping_address": {
                "name": "Ada Lovelace",
                "line1": "12 St James's Square",
                "line2": "",
                "city": "London",
                "postal_code": "SW1Y 4JH",
                "country": "GB",
            },
        }
    ]


async def test_a_repeat_with_the_same_key_and_body_answers_the_same_order(orders: Orders):
    cup = orders.shop.add_product("Espresso cup", 1250)
    fill_cart(orders, "ada", (cup, 1))
    first = await orders.place("ada", "key-1")
    fill_cart(orders, "ada", (cup, 5))  # what changed since does not matter: it is a replay

    again = await orders.place("ada", "key-1")

    assert again == first
    assert await orders.pool.fetchval("SELECT count(*) FROM orders") == 1
    assert len(await orders.published("OrderPlaced")) == 1


async def test_the_same_key_with_a_different_body_is_invalid(orders: Orders):
    cup = orders.shop.add_product("Espresso cup", 1250)
    fill_cart(orders, "ada", (cup, 1))
    await orders.place("ada", "key-1", token="tok_visa")

    error = await rpc_error(orders.place("ada", "key-1", token="tok_mastercard"))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency_key" in violations(error)
    assert await orders.pool.fetchval("SELECT count(*) FROM orders") == 1


async def test_keys_are_per_user(orders: Orders):
    cup = orders.shop.add_product("Espresso cup", 1250)
    fill_cart(orders, "ada", (cup, 1))
    fill_cart(orders, "bob", (cup, 2))

    ada = await orders.place("ada", "same-key")
    bob = await orders.place("bob", "same-key")

    assert ada.order_id != bob.order_id and bob.items[0].quantity == 2


async def test_the_same_key_while_the_first_is_in_flight_is_aborted(orders: Orders):
    cup = orders.shop.add_product("Espresso cup", 1250)
    fill_cart(orders, "ada", (cup, 1))
    orders.shop.hold_cart = asyncio.Event()
    first = asyncio.create_task(orders.place("ada", "key-1"))
    await asyncio.wait_for(orders.shop.cart_called.wait(), 5)

    error = await rpc_error(orders.place("ada", "key-1"))

    assert error.code() == grpc.StatusCode.ABORTED
    orders.shop.hold_cart.set()
    placed = await first
    assert await orders.place("ada", "key-1") == placed


async def test_concurrent_requests_with_one_key_place_exactly_one_order(orders: Orders):
    cup = orders.shop.add_product("Espresso cup", 1250)
    fill_cart(orders, "ada", (cup, 1))

    results = await asyncio.gather(*(orders.place("ada", "key-1") for _ in range(8)), return_exceptions=True)

    placed = {result.order_id for result in results if isinstance(result, orders_pb2.Order)}
    refused = [result for result in results if not isinstance(result, orders_pb2.Order)]
    assert len(placed) == 1
    assert all(error.code() == grpc.StatusCode.ABORTED for error in refused)
    assert await orders.pool.fetchval("SELECT count(*) FROM orders") == 1
    assert len(await orders.published("OrderPlaced")) == 1


async def test_another_key_of_the_same_user_in_flight_is_aborted_and_free_once_answered(orders: Orders):
    """Both would read the one cart and place it twice; the second is told to try again."""
    cup = orders.shop.add_product("Espresso cup", 1250)
    fill_cart(orders, "ada", (cup, 1))
    orders.shop.hold_cart = asyncio.Event()
    first = asyncio.create_task(orders.place("ada", "key-1"))
    await asyncio.wait_for(orders.shop.cart_called.wait(), 5)

    error = await rpc_error(orders.place("ada", "key-2"))
    other_user = asyncio.create_task(orders.place("bob", "key-2"))

    assert error.code() == grpc.StatusCode.ABORTED and "another order of yours" in error.details()
    assert await orders.pool.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    orders.shop.hold_cart.set()
    await first
    with contextlib.suppress(grpc.aio.AioRpcError):
        await other_user
    fill_cart(orders, "ada", (cup, 1))
    assert (await orders.place("ada", "key-2")).order_id != (await first).order_id


async def test_the_users_placing_is_free_again_after_a_refusal(orders: Orders):
    advisory_locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"  # the relay holds one
    held_before = await orders.pool.fetchval(advisory_locks)
    cup = orders.shop.add_product("Espresso cup", 1250)
    await rpc_error(orders.place("ada", "key-1"))  # an empty cart
    orders.shop.available = False
    await rpc_error(orders.place("ada", "key-2"))  # cart down
    orders.shop.available = True
    fill_cart(orders, "ada", (cup, 1))

    assert (await orders.place("ada", "key-3")).status == "PENDING"
    assert await orders.pool.fetchval(advisory_locks) == held_before


async def test_an_empty_cart_cannot_be_placed(orders: Orders):
    error = await rpc_error(orders.place("ada"))

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "cart is empty"
    assert await orders.pool.fetchval("SELECT count(*) FROM idempotency_keys") == 0


async def test_a_product_the_catalog_no_longer_sells_cannot_be_placed(orders: Orders):
    fill_cart(orders, "ada", ("gone", 1))

    error = await rpc_error(orders.place("ada"))

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_bad_address_or_token_names_each_field(orders: Orders):
    address = orders_pb2.Address(name="Ada", line1="", city="London", postal_code="", country="England")

    error = await rpc_error(orders.place("ada", token="", address=address))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(error)) == {
        "shipping_address.line1",
        "shipping_address.postal_code",
        "shipping_address.country",
        "payment_token",
    }


async def test_cart_down_answers_unavailable_and_the_key_stays_free(orders: Orders):
    cup = orders.shop.add_product("Espresso cup", 1250)
    fill_cart(orders, "ada", (cup, 1))
    orders.shop.available = False

    error = await rpc_error(orders.place("ada", "key-1"))

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert unavailable_dependency(error) == "cart"  # orders itself is well
    orders.shop.available = True
    assert (await orders.place("ada", "key-1")).status == "PENDING"


async def test_a_token_that_expired_on_its_way_to_cart_is_the_callers_401_not_carts_outage(orders: Orders):
    cup = orders.shop.add_product("Espresso cup", 1250)
    fill_cart(orders, "ada", (cup, 1))
    orders.shop.cart_refuses_the_token = True

    error = await rpc_error(orders.place("ada", "key-1"))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert unavailable_dependency(error) is None


async def test_the_ordered_lines_leave_the_cart_before_the_order_is_answered(orders: Orders):
    """So the shopper's next order cannot take them again, however late cart hears of OrderPlaced."""
    cup, jug = orders.shop.add_product("Espresso cup", 1250), orders.shop.add_product("Milk jug", 1999)
    fill_cart(orders, "ada", (cup, 2), (jug, 1))

    order = await orders.place("ada", "key-1")
    assert await orders.place("ada", "key-1") == order  # a replay takes nothing out again

    assert orders.shop.ordered_removals == [(order.order_id, "ada", [(cup, 2), (jug, 1)])]


async def test_an_order_is_placed_even_if_cart_cannot_take_its_lines_out_at_once(orders: Orders):
    """OrderPlaced takes them out when cart is back."""
    cup = orders.shop.add_product("Espresso cup", 1250)
    fill_cart(orders, "ada", (cup, 1))
    orders.shop.removals_available = False

    order = await orders.place("ada")

    assert order.status == "PENDING"
    assert {order_id for order_id, _, _ in orders.shop.ordered_removals} == {order.order_id}  # retried, then given up
    assert [event["order_id"] for event in await orders.published("OrderPlaced")] == [order.order_id]


async def test_lines_cart_did_not_take_out_leave_it_before_the_users_next_order_reads_it(orders: Orders):
    """Another key (a second tab, a client that makes a key per click) would otherwise read the
    same lines and order them again, while cart has not heard of the first order."""
    cup, jug = orders.shop.add_product("Espresso cup", 1250), orders.shop.add_product("Milk jug", 1999)
    fill_cart(orders, "ada", (cup, 1))
    orders.shop.removals_available = False
    first = await orders.place("ada", "key-1")

    error = await rpc_error(orders.place("ada", "key-2"))  # cart still does not take them out

    assert error.code() == grpc.StatusCode.UNAVAILABLE and unavailable_dependency(error) == "cart"
    assert [event["order_id"] for event in await orders.published("OrderPlaced")] == [first.order_id]
    orders.shop.removals_available = True
    error = await rpc_error(orders.place("ada", "key-2"))  # now out of the cart, which is empty
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert orders.shop.ordered_removals[-1] == (first.order_id, "ada", [(cup, 1)])
    asked = len(orders.shop.ordered_removals)
    fill_cart(orders, "ada", (jug, 1))
    second = await orders.place("ada", "key-3")
    assert [(line.product_id, line.quantity) for line in second.items] == [(jug, 1)]
    assert orders.shop.ordered_removals[asked:] == [(second.order_id, "ada", [(jug, 1)])]  # the first's are out


async def test_lines_left_longer_ago_than_cart_remembers_taking_them_out_are_not_taken_out_again(orders: Orders):
    """Cart forgets an order whose lines it took out after the chassis's claim lifetime: asked
    then, it would take them out of the user's newer cart."""
    cup = orders.shop.add_product("Espresso cup", 1250)
    fill_cart(orders, "ada", (cup, 1))
    orders.shop.removals_available = False
    await orders.place("ada", "key-1")
    await orders.pool.execute(
        "UPDATE lines_left_in_cart SET created_at = now() - make_interval(secs => $1 + 60)", repository.LINES_LEFT_SECONDS
    )
    orders.shop.removals_available = True
    fill_cart(orders, "ada", (cup, 1))  # the cart of five weeks later
    asked = len(orders.shop.ordered_removals)

    second = await orders.place("ada", "key-2")

    assert [(line.product_id, line.quantity) for line in second.items] == [(cup, 1)]
    assert orders.shop.ordered_removals[asked:] == [(second.order_id, "ada", [(cup, 1)])]
    assert await repository.forget_lines_left_expired(orders.pool) == 1
    assert await orders.pool.fetchval("SELECT count(*) FROM lines_left_in_cart") == 0


async def test_every_method_needs_a_user_token(orders: Orders):
    error = await rpc_error(orders.call("ListOrders", orders_pb2.ListOrdersRequest(), user=None))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_another_users_order_is_not_found(orders: Orders):
    cup = orders.shop.add_product("Espresso cup", 1250)
    fill_cart(orders, "ada", (cup, 1))
    order = await orders.place("ada")

    for call in (
        orders.get("bob", order.order_id),
        orders.cancel("bob", order.order_id),
        orders.get("ada", "not-a-uuid"),
    ):
        assert (await rpc_error(call)).code() == grpc.StatusCode.NOT_FOUND
    assert (await orders.get("ada", order.order_id)).status == "PENDING"


async def test_list_shows_only_the_callers_orders_newest_first_by_page(orders: Orders):
    cup = orders.shop.add_product("Espresso cup", 1250)
    placed = []
    for n in range(3):  # each order takes its lines out of the cart
        fill_cart(orders, "ada", (cup, 1))
        placed.append((await orders.place("ada", f"key-{n}")).order_id)
    fill_cart(orders, "bob", (cup, 1))
    await orders.place("bob", "key-0")

    first_page = await orders.list("ada", page=1, page_size=2)
    second_page = await orders.list("ada", page=2, page_size=2)
    everything = await orders.list("ada")

    assert [o.order_id for o in first_page.items] == placed[:0:-1]
    assert [o.order_id for o in second_page.items] == placed[:1]
    assert first_page.total == second_page.total == everything.total == 3
    assert [o.order_id for o in everything.items] == placed[::-1]
    assert (await orders.list("carol")).total == 0


async def test_list_refuses_a_page_size_over_100(orders: Orders):
    error = await rpc_error(orders.list("ada", page_size=101))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_size" in violations(error)


async def test_a_customer_cancels_a_pending_order_once(orders: Orders):
    cup = orders.shop.add_product("Espresso cup", 1250)
    fill_cart(orders, "ada", (cup, 2))
    order = await orders.place("ada")

    cancelled = await orders.cancel("ada", order.order_id)

    assert (cancelled.status, cancelled.status_reason) == ("CANCELLED", "customer_request")
    assert [change.status for change in cancelled.history] == ["PENDING", "CANCELLED"]
    assert [(e["order_id"], e["reason"]) for e in await orders.published("OrderCancelled")] == [
        (order.order_id, "customer_request")
    ]
    again = await rpc_error(orders.cancel("ada", order.order_id))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert len(await orders.published("OrderCancelled")) == 1
    assert orders.shop.shipment_cancels == []  # no parcel is booked before OrderConfirmed


async def confirmed_order(orders: Orders, user: str) -> orders_pb2.Order:
    cup = orders.shop.add_product("Espresso cup", 1250)
    fill_cart(orders, user, (cup, 2))
    order = await orders.place(user)
    await confirm(orders.pool, order.order_id)
    assert (await orders.get(user, order.order_id)).status == "CONFIRMED"
    return order


async def test_cancelling_a_confirmed_order_has_shipping_cancel_the_parcel_first(orders: Orders):
    order = await confirmed_order(orders, "ada")

    cancelled = await orders.cancel("ada", order.order_id)

    assert orders.shop.shipment_cancels == [(order.order_id, "ada")]
    assert (cancelled.status, cancelled.status_reason) == ("CANCELLED", "customer_request")
    assert [change.status for change in cancelled.history] == ["PENDING", "CONFIRMED", "CANCELLED"]
    assert [e["reason"] for e in await orders.published("OrderCancelled")] == ["customer_request"]


async def test_a_confirmed_order_whose_parcel_left_is_not_cancelled(orders: Orders):
    order = await confirmed_order(orders, "ada")
    orders.shop.dispatched.add(order.order_id)

    error = await rpc_error(orders.cancel("ada", order.order_id))

    assert (error.code(), error.details()) == (grpc.StatusCode.FAILED_PRECONDITION, "already shipped")
    assert (await orders.get("ada", order.order_id)).status == "CONFIRMED"
    assert await orders.published("OrderCancelled") == []


async def test_shipping_down_answers_unavailable_and_changes_nothing(orders: Orders):
    order = await confirmed_order(orders, "ada")
    orders.shop.shipping_available = False

    error = await rpc_error(orders.cancel("ada", order.order_id))

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert unavailable_dependency(error) == "shipping"
    assert (await orders.get("ada", order.order_id)).status == "CONFIRMED"
    assert await orders.published("OrderCancelled") == []
    orders.shop.shipping_available = True
    assert (await orders.cancel("ada", order.order_id)).status == "CANCELLED"
