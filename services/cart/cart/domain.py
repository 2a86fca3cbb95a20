"""A cart in plain Python: what a valid line is, and how a cart is priced from catalog's prices.

A cart stores only product ids and quantities. Names and prices come from catalog each time the
cart is read, so the cart shows what the order will charge, never a price a client sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

MAX_QUANTITY = 99
MAX_LINES = 100
"""Different products in one cart: far more than a shopper buys at once, and well inside what
catalog prices in one call (a cart is priced whole on every read)."""
DEFAULT_CURRENCY = "USD"  # the total of an empty cart


class InvalidQuantity(ValueError):
    pass


class UnknownProduct(LookupError):
    pass


class CartFull(ValueError):
    """A new product for a cart that already holds MAX_LINES different ones."""


class MixedCurrencies(ValueError):
    """Catalog priced the cart's products in different currencies: there is no one total."""


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    price: int  # minor units
    currency: str


@dataclass(frozen=True)
class Line:
    product_id: str
    name: str
    quantity: int
    unit_price: int
    line_total: int


@dataclass(frozen=True)
class PricedCart:
    lines: tuple[Line, ...]
    total: int
    currency: str


def check_quantity(quantity: int) -> int:
    if not 0 <= quantity <= MAX_QUANTITY:
        raise InvalidQuantity(f"must be between 0 and {MAX_QUANTITY}")
    return quantity


def check_room(quantities: Mapping[str, int], product_id: str, quantity: int) -> None:
    """Two new products set at once may both find room for the last one: the bound is on
    resources, not a figure to the unit."""
    if quantity and product_id not in quantities and len(quantities) >= MAX_LINES:
        raise CartFull(f"a cart holds at most {MAX_LINES} different products")


def price(quantities: Mapping[str, int], products: Mapping[str, Product]) -> PricedCart:
    """Prices the lines catalog knows, by product name; a product catalog no longer has is left out."""
    lines = tuple(
        Line(product.id, product.name, quantity, product.price, product.price * quantity)
        for product, quantity in sorted(
            ((products[product_id], quantity) for product_id, quantity in quantities.items() if product_id in products),
            key=lambda pair: (pair[0].name, pair[0].id),
        )
    )
    currencies = {products[line.product_id].currency for line in lines}
    if len(currencies) > 1:
        raise MixedCurrencies(", ".join(sorted(currencies)))
    currency = currencies.pop() if currencies else DEFAULT_CURRENCY
    return PricedCart(lines, sum(line.line_total for line in lines), currency)
