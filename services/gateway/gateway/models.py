"""The edge API's JSON shapes (API.md), as pydantic models: they make the OpenAPI document and
validate what clients send. Responses are built as plain dicts on the hot path; the models
below describe them and the contract tests validate real responses against the document.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# Text the services can store: PostgreSQL text holds no NUL character.
STORABLE = r"^[^\x00]*$"
# Storable text that is not blank. The services strip with Python's idea of whitespace, which
# also counts the C0 separators (\x1c-\x1f) that JSON Schema's `\s` does not.
NOT_BLANK = r"^[^\x00]*[^\s\x00-\x1f][^\x00]*$"


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
