"""Shipping: shipments of confirmed orders through the carrier, dispatched a few seconds later."""
