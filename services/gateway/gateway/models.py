"""The edge API's JSON shapes (API.md), as pydantic models: they make the OpenAPI document and
validate what clients send. Responses are built as plain dicts on the hot path; the models
below describe them and the contract tests validate real responses against the document.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

# Whitespace as the services strip it (Python's `str.isspace`), spelled out. A pattern never says
# `\s`: it means one set in JSON Schema's regex dialect (ECMA-262, which counts \ufeff but not
# \x85), another in pydantic's (Rust), and a third in Python, so the document would promise
# clients text that the edge or a service then refuses.
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Text the services can store: PostgreSQL text holds no NUL character.
STORABLE = r"^[^\x00]*$"
CONTROLS = r"\x00-\x1f\x7f-\x9f"
# Characters that show nothing: Unicode's default-ignorable code points of the basic plane
# (zero-width spaces and joiners, the byte order mark, bidirectional controls, ...).
FORMATTING = (
    r"\xad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    r"\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
)
# Those, and the combining diacritical marks, which a name cannot be made of alone.
INVISIBLE = FORMATTING + r"\u0300-\u036f"
# Storable text that is not blank: some character that is not whitespace, invisible or a C0 control.
NOT_BLANK = rf"^[^\x00]*[^{WHITESPACE}{INVISIBLE}\x00-\x1f][^\x00]*$"


def _json_number(value: object) -> object:
    """Lax pydantic reads `true` as 1 and `"3"` as 3; JSON Schema's integer is a number, though
    it may be written 3.0. So: any number, whose value pydantic then checks is whole."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    return value


JsonInteger = Annotated[int, BeforeValidator(_json_number)]


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
