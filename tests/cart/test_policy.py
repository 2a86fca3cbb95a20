"""Cart's resilience policy, as its callers (gateway, orders) read it from deploy/resilience.toml."""

from __future__ import annotations

from chassis.resilience import load_policies

# What a SetItem or GetCart needs beyond its catalog call: Redis round trips, and the stalls of a
# loaded machine. At 0.5 s (catalog's own timeout) the chaos suite's checkout load timed out bursts
# of cart calls with no fault injected, and the gateway's breaker opened every ~10 s.
ROOM_BEYOND_CATALOG_SECONDS = 0.5


def test_a_cart_call_leaves_room_for_the_catalog_call_behind_it() -> None:
    policies = load_policies()

    cart, catalog = policies.for_dependency("cart"), policies.for_dependency("catalog")

    assert cart.timeout_seconds >= catalog.timeout_seconds + ROOM_BEYOND_CATALOG_SECONDS


def test_orders_still_has_room_for_cart_catalog_and_cart_again() -> None:
    """PlaceOrder reads the cart, prices it from catalog, and takes the ordered lines out."""
    policies = load_policies()

    orders, cart, catalog = (policies.for_dependency(name) for name in ("orders", "cart", "catalog"))

    assert orders.timeout_seconds > 2 * cart.timeout_seconds + catalog.timeout_seconds
