"""Catalog's gRPC API: translates requests into repository calls and rows into messages."""

from __future__ import annotations

import re
import uuid

import asyncpg
import grpc
from agora.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from agora.common.v1 import common_pb2

from catalog import repository
from chassis import auth
from chassis.grpc import InvalidArgument, translating
from chassis.messaging import Outbox

MAX_PAGE_SIZE = 100
MAX_IDS = 500
_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SHOP_CURRENCY = "USD"
"""The shop prices everything in one currency: a cart and an order have one total, and the
sales report (analytics) adds up its money in this currency."""
MAX_PRICE = 10_000_000_000
"""100 million in major units: any cart of such products still totals within a 64-bit integer."""
NUL = "\x00"  # PostgreSQL text cannot hold it


def _errors(error: Exception) -> tuple[grpc.StatusCode, str] | None:
    if isinstance(error, repository.SkuTaken):
        return grpc.StatusCode.ALREADY_EXISTS, f"sku {error} is taken"
    return None


def _message(product: repository.Product) -> catalog_pb2.Product:
    return catalog_pb2.Product(
        id=product.id, sku=product.sku, name=product.name, description=product.description,
        price=common_pb2.Money(amount=product.price_amount, currency=product.currency),
        categories=product.categories, image_url=product.image_url or "",
    )


class CatalogApi(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, pool: asyncpg.Pool, outbox: Outbox):
        self._pool = pool
        self._outbox = outbox

    async def ListProducts(self, request, context):  # type: ignore[no-untyped-def]
        page = request.page or 1
        page_size = request.page_size or 20
        violations = []
        if page < 1:
            violations.append(("page", "must be 1 or more"))
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            violations.append(("page_size", f"must be between 1 and {MAX_PAGE_SIZE}"))
        if len(request.q) > 200:
            violations.append(("q", "must be at most 200 characters"))
        violations += [(name, "must not contain NUL") for name in ("q", "category") if NUL in getattr(request, name)]
        if violations:
            raise InvalidArgument(violations)
        products, total = await repository.list_products(
            self._pool, query=request.q.strip(), category=request.category, page=page, page_size=page_size
        )
        return catalog_pb2.ListProductsResponse(items=[_message(p) for p in products], total=total)

    async def GetProducts(self, request, context):  # type: ignore[no-untyped-def]
        if len(request.ids) > MAX_IDS:
            raise InvalidArgument([("ids", f"at most {MAX_IDS} ids per call")])
        products = await repository.get_products(self._pool, list(request.ids))
        return catalog_pb2.GetProductsResponse(products=[_message(p) for p in products])

    async def ListCategories(self, request, context):  # type: ignore[no-untyped-def]
        categories = await repository.list_categories(self._pool)
        return catalog_pb2.ListCategoriesResponse(
            items=[catalog_pb2.Category(slug=slug, name=name) for slug, name in categories]
        )

    @translating(_errors)
    async def CreateProduct(self, request, context):  # type: ignore[no-untyped-def]
        auth.require_principal("admin")
        violations = []
        if not _SKU.fullmatch(request.sku):
            violations.append(("sku", "1 to 64 letters, digits, dots, dashes or underscores"))
        if not request.name.strip() or len(request.name) > 200:
            violations.append(("name", "must be 1 to 200 characters"))
        if len(request.description) > 10_000:
            violations.append(("description", "must be at most 10000 characters"))
        texts = {"name": request.name, "description": request.description, "image_url": request.image_url}
        texts.update({f"categories.{index}": category for index, category in enumerate(request.categories)})
        violations += [(name, "must not contain NUL") for name, text in texts.items() if NUL in text]
        if not 0 <= request.price.amount <= MAX_PRICE:
            violations.append(("price.amount", f"must be between 0 and {MAX_PRICE}"))
        if request.price.currency != SHOP_CURRENCY:
            violations.append(("price.currency", f"must be {SHOP_CURRENCY}: the shop sells in one currency"))
        if not request.categories:
            violations.append(("categories", "name at least one category"))
        if len(request.image_url) > 2000:
            violations.append(("image_url", "must be at most 2000 characters"))
        if violations:
            raise InvalidArgument(violations)
        product = repository.Product(
            id=str(uuid.uuid4()), sku=request.sku, name=request.name.strip(), description=request.description,
            price_amount=request.price.amount, currency=request.price.currency,
            categories=tuple(dict.fromkeys(request.categories)), image_url=request.image_url or None,
        )
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                created = await repository.create_product(conn, product)
            except repository.UnknownCategory as error:
                raise InvalidArgument([("categories", f"unknown category: {error}")]) from None
            await repository.announce(conn, self._outbox, [created])
        return _message(created)
