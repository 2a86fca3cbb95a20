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


def cart(message: Any) -> dict[str, Any]:
    return {
        "items": [
            {"product_id": item.product_id, "name": item.name, "quantity": item.quantity,
             "unit_price": money(item.unit_price), "line_total": money(item.line_total)}
            for item in message.items
        ],
        "total": money(message.total) if message.HasField("total") else {"amount": 0, "currency": "USD"},
    }


def address(message: Any) -> dict[str, Any]:
    result = {"name": message.name, "line1": message.line1, "city": message.city,
              "postal_code": message.postal_code, "country": message.country}
    if message.line2:
        result["line2"] = message.line2
    return result


def order(message: Any) -> dict[str, Any]:
    return {
        "order_id": message.order_id,
        "status": message.status,
        "status_reason": message.status_reason or None,
        "items": [
            {"product_id": item.product_id, "name": item.name, "quantity": item.quantity,
             "unit_price": money(item.unit_price), "line_total": money(item.line_total)}
            for item in message.items
        ],
        "total": money(message.total),
        "shipping_address": address(message.shipping_address),
        "created_at": message.created_at,
        "updated_at": message.updated_at,
        "history": [{"status": change.status, "at": change.at} for change in message.history],
    }


def payment(message: Any | None) -> dict[str, Any] | None:
    if message is None:
        return None
    return {"status": message.status, "amount_captured": money(message.amount_captured),
            "amount_refunded": money(message.amount_refunded)}


def shipment(message: Any | None) -> dict[str, Any] | None:
    """API.md knows shipments as `created` or `dispatched`: a cancelled one is no shipment at all."""
    if message is None or message.status not in ("created", "dispatched"):
        return None
    return {"status": message.status, "carrier": message.carrier, "tracking_number": message.tracking_number}
