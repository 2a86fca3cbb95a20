"""Recommendations' gRPC API through the real bootstrap, chassis server and NATS."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from chassis.grpc import FIELD_VIOLATIONS_KEY
from tests.recommendations.conftest import Service, confirmed


async def test_the_gateway_gets_what_was_bought_together_learned_from_the_bus_without_a_token(
    service: Service,
) -> None:
    await service.publish(confirmed({"cup": 1, "saucer": 1}))
    await service.publish(confirmed({"cup": 1, "saucer": 1, "spoon": 3}))

    async with asyncio.timeout(10):
        while await service.recommend("cup") != ["saucer", "spoon"]:  # noqa: ASYNC110 (the consumer has no event to wait on)
            await asyncio.sleep(0.05)
    assert await service.recommend("kettle") == ["spoon", "cup", "saucer"]
    assert await service.recommend("kettle", limit=1) == ["spoon"]


async def test_a_bad_request_names_its_fields(service: Service) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.recommend("", limit=-1)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    violations = json.loads(dict(caught.value.trailing_metadata())[FIELD_VIOLATIONS_KEY])
    assert [v["field"] for v in violations] == ["product_id", "limit"]
