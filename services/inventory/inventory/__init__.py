"""Inventory: stock levels and the reservations the checkout saga makes against them."""
