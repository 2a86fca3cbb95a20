"""Catalog at the edge: product lists, the product page (aggregated), categories."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from agora.catalog.v1 import catalog_pb2
from agora.inventory.v1 import inventory_pb2
from agora.recommendations.v1 import recommendations_pb2
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from chassis.http import Problem
from chassis.logs import get_logger
from gateway import views
from gateway.microcache import MicroCache
from gateway.models import STORABLE, CategoryList, ProductList, ProductPage
from gateway.params import documented, known, validated
from gateway.upstream import call
from gateway.upstreams import Upstreams

RECOMMENDATIONS = 4
log = get_logger(__name__)



class ProductQuery(BaseModel):
    q: str = Field("", max_length=200, pattern=STORABLE)
    category: str = Field("", max_length=64, pattern=STORABLE)
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(20, ge=1, le=100)


class ProductPath(BaseModel):
    product_id: str = Field(min_length=1)


def router(upstreams: Upstreams, cache: MicroCache) -> APIRouter:
    routes = APIRouter(prefix="/api/v1", tags=["catalog"])

    # The two hottest routes of the shop take their parameters through gateway.params.
    @routes.get("/products", response_model=ProductList, summary="List or search products",
                openapi_extra=documented(query=ProductQuery))
    async def list_products(request: Request) -> Response:
        query = validated(ProductQuery, "query", request.query_params)

        async def load() -> tuple[bytes, bool]:
            response = await call("catalog", upstreams.catalog, "ListProducts", catalog_pb2.ListProductsRequest(
                q=query.q, category=query.category, page=query.page, page_size=query.page_size
            ))
            items = [views.product_summary(product) for product in response.items]
            return json_bytes(views.page(items, page=query.page, page_size=query.page_size, total=response.total)), True

        return raw_json(await cache.get(("products", query.q, query.category, query.page, query.page_size), load))

    @routes.get("/products/{product_id}", response_model=ProductPage, summary="A product page",
                responses={404: {"description": "unknown product"}}, openapi_extra=documented(path=ProductPath))
    async def get_product(request: Request) -> Response:
        product_id = known(validated(ProductPath, "path", request.path_params).product_id, "product")
        return raw_json(await cache.get(("product", product_id), lambda: _product_page(upstreams, product_id)))

    @routes.get("/categories", response_model=CategoryList, summary="All categories")
    async def list_categories() -> Response:
        async def load() -> tuple[bytes, bool]:
            response = await call("catalog", upstreams.catalog, "ListCategories", catalog_pb2.ListCategoriesRequest())
            return json_bytes({"items": [{"slug": c.slug, "name": c.name} for c in response.items]}), True

        return raw_json(await cache.get("categories", load))

    return routes


def json_bytes(content: Any) -> bytes:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def raw_json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


async def _product_page(upstreams: Upstreams, product_id: str) -> tuple[bytes, bool]:
    """The page, and whether it may be cached: a degraded page is not kept."""
    found = await call("catalog", upstreams.catalog, "GetProducts", catalog_pb2.GetProductsRequest(ids=[product_id]))
    if not found.products:
        raise Problem(404, "no such product")
    product = found.products[0]
    degraded: list[str] = []
    availability, recommendations = await asyncio.gather(
        _availability(upstreams, product_id), _recommendations(upstreams, product)
    )
    if availability is None:
        degraded.append("availability")
    if recommendations is None or recommendations[1]:
        degraded.append("recommendations")
    page = views.product_page(
        product, availability=availability,
        recommendations=recommendations[0] if recommendations else None, degraded=degraded,
    )
    return json_bytes(page), not degraded


async def _availability(upstreams: Upstreams, product_id: str) -> dict[str, Any] | None:
    """Optional part: the page still renders without it."""
    if upstreams.inventory is None:
        return None
    try:
        response = await upstreams.inventory.GetAvailability(
            inventory_pb2.GetAvailabilityRequest(product_ids=[product_id])
        )
    except Exception as error:
        log.warning("availability_degraded", error=type(error).__name__)
        return None
    for item in response.items:
        if item.product_id == product_id:
            return {"in_stock": item.in_stock, "quantity": item.available}
    return {"in_stock": False, "quantity": 0}


async def _recommendations(upstreams: Upstreams, product: Any) -> tuple[list[dict[str, Any]], bool] | None:
    """Up to four suggestions and whether they are the fallback; None if not even that worked.

    The fallback when recommendations cannot answer is the product's own category, which
    catalog always knows: the page stays useful and says it is degraded.
    """
    ids: list[str] = []
    fallback = upstreams.recommendations is None
    if not fallback:
        try:
            response = await upstreams.recommendations.Recommend(
                recommendations_pb2.RecommendRequest(product_id=product.id, limit=RECOMMENDATIONS)
            )
            ids = [pid for pid in response.product_ids if pid != product.id][:RECOMMENDATIONS]
        except Exception as error:
            log.warning("recommendations_degraded", error=type(error).__name__)
            fallback = True
    try:
        if fallback:
            category = product.categories[0] if product.categories else ""
            listed = await upstreams.catalog.ListProducts(
                catalog_pb2.ListProductsRequest(category=category, page=1, page_size=RECOMMENDATIONS + 1)
            )
            products = [p for p in listed.items if p.id != product.id][:RECOMMENDATIONS]
        elif ids:
            found = await upstreams.catalog.GetProducts(catalog_pb2.GetProductsRequest(ids=ids))
            by_id = {p.id: p for p in found.products}
            products = [by_id[pid] for pid in ids if pid in by_id]
        else:
            products = []
    except Exception as error:
        log.warning("recommendation_products_degraded", error=type(error).__name__)
        return None
    return [views.product_summary(p) for p in products], fallback
