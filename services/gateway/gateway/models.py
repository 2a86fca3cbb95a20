"""The edge API's JSON shapes (API.md), as pydantic models: they make the OpenAPI document and
validate what clients send. Responses are built as plain dicts on the hot path; the models
below describe them and the contract tests validate real responses against the document.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Money(BaseModel):
    amount: int = Field(description="Minor units (cents)")
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class ProductSummary(BaseModel):
    id: str
    sku: str
    name: str
    price: Money
    categories: list[str]
    image_url: str | None


class Availability(BaseModel):
    in_stock: bool
    quantity: int


class ProductPage(ProductSummary):
    description: str
    availability: Availability | None
    recommendations: list[ProductSummary] | None
    degraded: list[str]


class ProductList(BaseModel):
    items: list[ProductSummary]
    page: int
    page_size: int
    total: int


class Category(BaseModel):
    slug: str
    name: str


class CategoryList(BaseModel):
    items: list[Category]


class FieldError(BaseModel):
    field: str
    message: str


class ProblemDocument(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class Health(BaseModel):
    status: Literal["ok", "ready"]
