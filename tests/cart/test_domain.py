"""Pricing a cart and the rules on a line, without I/O."""

from __future__ import annotations

import pytest

from cart.domain import InvalidQuantity, Line, MixedCurrencies, Product, check_quantity, price

CUP = Product("p-cup", "Espresso cup", 1250, "USD")
JUG = Product("p-jug", "Milk jug", 1999, "USD")


def test_a_cart_is_priced_per_line_and_in_total_sorted_by_name() -> None:
    cart = price({"p-jug": 1, "p-cup": 2}, {"p-cup": CUP, "p-jug": JUG})
    assert cart.lines == (Line("p-cup", "Espresso cup", 2, 1250, 2500), Line("p-jug", "Milk jug", 1, 1999, 1999))
    assert (cart.total, cart.currency) == (4499, "USD")


def test_a_product_catalog_no_longer_has_is_left_out() -> None:
    cart = price({"p-cup": 1, "p-gone": 3}, {"p-cup": CUP})
    assert [line.product_id for line in cart.lines] == ["p-cup"] and cart.total == 1250


def test_an_empty_cart_costs_nothing() -> None:
    cart = price({}, {})
    assert (cart.lines, cart.total, cart.currency) == ((), 0, "USD")


def test_products_in_different_currencies_have_no_total() -> None:
    with pytest.raises(MixedCurrencies):
        price({"p-cup": 1, "p-eur": 1}, {"p-cup": CUP, "p-eur": Product("p-eur", "Tasse", 900, "EUR")})


@pytest.mark.parametrize("quantity", [0, 1, 99])
def test_quantities_from_0_to_99_are_accepted(quantity: int) -> None:
    assert check_quantity(quantity) == quantity


@pytest.mark.parametrize("quantity", [-1, 100])
def test_quantities_outside_0_to_99_are_refused(quantity: int) -> None:
    with pytest.raises(InvalidQuantity):
        check_quantity(quantity)
