"""A clock the tests move by hand, and real gRPC errors to fail with."""

from __future__ import annotations

import asyncio

import grpc
from prometheus_client import REGISTRY


class FakeClock:
    """Monotonic seconds that pass only when a test (or a fake sleep) says so."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), f"test says {code.name}")


def metric(name: str, dependency: str) -> float:
    return REGISTRY.get_sample_value(name, {"dependency": dependency}) or 0.0
