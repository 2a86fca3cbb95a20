"""Request parameters of the hottest routes, validated as one pydantic model per location.

FastAPI validates each declared parameter on its own, and on a cached catalog read that cost
more than everything else the route does. A route that takes its parameters this way
validates them in one call, answers a mistake exactly as FastAPI would (the same 422 problem
with the same field errors), and documents them with `openapi_extra=documented(...)`, made
from the same models so that the document and the validation cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Path
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from chassis.http import Problem

Location = Literal["path", "query"]

MAX_ID_LENGTH = 64
"""Longer than any id Agora makes (they are UUIDs)."""
ModelT = TypeVar("ModelT", bound=BaseModel)


def validated(model: type[ModelT], location: Location, values: Mapping[str, str]) -> ModelT:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise RequestValidationError(
            [{**problem, "loc": (location, *problem["loc"])} for problem in error.errors()]
        ) from None


def documented(**models: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route whose `path=` and `query=` parameters are these models' fields."""
    parameters = []
    for location, model in models.items():
        schema = model.model_json_schema()
        required = set(schema.get("required", ()))
        parameters += [
            {"name": name, "in": location, "required": name in required, "schema": field}
            for name, field in schema["properties"].items()
        ]
    return {"parameters": parameters, "responses": {"422": {"description": "Validation Error"}}}


def known(identifier: str, what: str) -> str:
    """An id too long to be one of ours names nothing: 404, as for any unknown id, without
    asking a service to look it up."""
    if len(identifier) > MAX_ID_LENGTH:
        raise Problem(404, f"no such {what}")
    return identifier


async def _product_id(product_id: Annotated[str, Path(min_length=1)]) -> str:
    return known(product_id, "product")


async def _order_id(order_id: Annotated[str, Path(min_length=1)]) -> str:
    return known(order_id, "order")


# Route parameters: a path's id, judged by `known` (404 when it is longer than any of ours).
ProductId = Annotated[str, Depends(_product_id)]
OrderId = Annotated[str, Depends(_order_id)]
