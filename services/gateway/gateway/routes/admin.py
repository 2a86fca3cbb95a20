"""Admin endpoints. The gateway checks the role; each service checks it again (zero trust)."""

from __future__ import annotations

from typing import Annotated

from agora.analytics.v1 import analytics_pb2
from agora.catalog.v1 import catalog_pb2
from agora.common.v1 import common_pb2
from agora.inventory.v1 import inventory_pb2
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from chassis.http import Problem
from gateway import views
from gateway.microcache import MicroCache
from gateway.models import NOT_BLANK, STORABLE, JsonInteger, Money, ProductSummary
from gateway.params import ProductId
from gateway.security import CurrentAdmin
from gateway.upstream import call
from gateway.upstreams import Upstreams

MAX_PRICE = 10_000_000_000
"""100 million in major units: any cart of such products still totals within a 64-bit integer."""
Storable = Annotated[str, Field(pattern=STORABLE)]


class Price(Money):
    amount: JsonInteger = Field(ge=0, le=MAX_PRICE, description="Minor units (cents)")


class NewProduct(BaseModel):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(max_length=200, pattern=NOT_BLANK)]
    description: Annotated[Storable, Field(max_length=10_000)]
    price: Price
    categories: Annotated[list[Annotated[Storable, Field(max_length=64)]], Field(min_length=1, max_length=20)]
    image_url: Annotated[Storable, Field(max_length=2000)] | None = None


class Product(ProductSummary):
    description: str


class StockLevel(BaseModel):
    quantity: JsonInteger = Field(ge=0, le=1_000_000)


class StockSet(BaseModel):
    product_id: str
    available: int
    reserved: int


class Stock(StockSet):
    sold: int


class TopProduct(BaseModel):
    product_id: str
    name: str
    units: int


class Sales(BaseModel):
    orders_confirmed: int
    orders_cancelled: int
    revenue: Money
    refunded: Money
    top_products: list[TopProduct]


def router(upstreams: Upstreams, catalog_cache: MicroCache) -> APIRouter:
    """`catalog_cache` is cleared by every write, so the admin's next read shows it."""
    routes = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses={
        401: {"description": "no valid access token"}, 403: {"description": "not an admin"},
    })

    async def known_product(product_id: str) -> None:
        found = await call("catalog", upstreams.catalog, "GetProducts", catalog_pb2.GetProductsRequest(ids=[product_id]))
        if not found.products:
            raise Problem(404, "no such product")

    @routes.post("/products", status_code=201, response_model=Product, summary="Add a product",
                 responses={409: {"description": "sku taken"}})
    async def create_product(body: NewProduct, _: CurrentAdmin) -> JSONResponse:
        product = await call("catalog", upstreams.catalog, "CreateProduct", catalog_pb2.CreateProductRequest(
            sku=body.sku, name=body.name, description=body.description,
            price=common_pb2.Money(amount=body.price.amount, currency=body.price.currency),
            categories=body.categories, image_url=body.image_url or "",
        ))
        catalog_cache.clear()
        return JSONResponse({**views.product_summary(product), "description": product.description}, status_code=201)

    @routes.put("/inventory/{product_id}", response_model=StockSet, summary="Set the stock available for sale",
                responses={404: {"description": "unknown product"}})
    async def set_stock(_: CurrentAdmin, product_id: ProductId, body: StockLevel) -> JSONResponse:
        await known_product(product_id)
        stock = await call("inventory", upstreams.inventory, "SetStock",
                           inventory_pb2.SetStockRequest(product_id=product_id, quantity=body.quantity))
        catalog_cache.clear()
        return JSONResponse({"product_id": stock.product_id, "available": stock.available, "reserved": stock.reserved})

    @routes.get("/inventory/{product_id}", response_model=Stock, summary="Stock levels of one product",
                responses={404: {"description": "unknown product"}})
    async def get_stock(_: CurrentAdmin, product_id: ProductId) -> JSONResponse:
        await known_product(product_id)
        stock = await call("inventory", upstreams.inventory, "GetStock", inventory_pb2.GetStockRequest(product_id=product_id))
        return JSONResponse({"product_id": stock.product_id, "available": stock.available,
                             "reserved": stock.reserved, "sold": stock.sold})

    @routes.get("/sales", response_model=Sales, summary="Sales figures from the analytics projections")
    async def sales(_: CurrentAdmin) -> JSONResponse:
        report = await call("analytics", upstreams.analytics, "SalesReport", analytics_pb2.SalesReportRequest())
        return JSONResponse({
            "orders_confirmed": report.orders_confirmed, "orders_cancelled": report.orders_cancelled,
            "revenue": views.money(report.revenue), "refunded": views.money(report.refunded),
            "top_products": [{"product_id": p.product_id, "name": p.name, "units": p.units} for p in report.top_products],
        })

    return routes
