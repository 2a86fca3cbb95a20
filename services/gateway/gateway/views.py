"""From contract messages to the edge API's JSON (API.md). Only this module knows both shapes."""

from __future__ import annotations

from typing import Any


def money(message: Any) -> dict[str, Any]:
    return {"amount": message.amount, "currency": message.currency}


def product_summary(product: Any) -> dict[str, Any]:
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "price": money(product.price),
        "categories": list(product.categories),
        "image_url": product.image_url or None,
    }


def product_page(
    product: Any, *, availability: dict[str, Any] | None, recommendations: list[dict[str, Any]] | None,
    degraded: list[str],
) -> dict[str, Any]:
    return {
        **product_summary(product),
        "description": product.description,
        "availability": availability,
        "recommendations": recommendations,
        "degraded": degraded,
    }


def page(items: list[dict[str, Any]], *, page: int, page_size: int, total: int) -> dict[str, Any]:
    return {"items": items, "page": page, "page_size": page_size, "total": total}
