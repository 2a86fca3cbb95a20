"""The gateway's public `/readyz` asks its dependencies at most once a second, however often it
is probed (`chassis.health.SharedVerdict`)."""

from __future__ import annotations

import asyncio

import aiohttp

from chassis.health import Readiness, SharedVerdict
from chassis.http import create_app
from tests.chassis.resilience.fakes import FakeClock
from tests.support import free_port, serving_http


class CountedDependency:
    def __init__(self) -> None:
        self.checks = 0
        self.down = False
        self.answering = asyncio.Event()
        self.answering.set()

    async def check(self) -> None:
        self.checks += 1
        await self.answering.wait()
        if self.down:
            raise ConnectionError("unreachable")


def ready_with(dependency: CountedDependency) -> Readiness:
    readiness = Readiness()
    readiness.add("catalog", dependency.check)
    readiness.accepting = True
    return readiness


async def test_asks_at_the_same_moment_share_one_round_of_checks() -> None:
    dependency = CountedDependency()
    dependency.answering.clear()
    verdict = SharedVerdict(ready_with(dependency), clock=FakeClock())

    asks = [asyncio.create_task(verdict.failing()) for _ in range(100)]
    await asyncio.sleep(0.01)
    asks[0].cancel()  # one asker leaving does not end the round the others wait for
    dependency.answering.set()

    answers = await asyncio.gather(*asks[1:])
    assert answers == [[]] * 99 and dependency.checks == 1


async def test_a_ready_verdict_serves_for_a_second_and_an_unready_one_for_a_tenth() -> None:
    dependency, clock = CountedDependency(), FakeClock()
    verdict = SharedVerdict(ready_with(dependency), ready_for=1.0, unready_for=0.1, clock=clock)

    assert await verdict.failing() == []
    dependency.down = True
    clock.advance(0.99)
    assert await verdict.failing() == [] and dependency.checks == 1
    clock.advance(0.01)
    assert await verdict.failing() == ["catalog"] and dependency.checks == 2
    dependency.down = False
    clock.advance(0.09)
    assert await verdict.failing() == ["catalog"] and dependency.checks == 2
    clock.advance(0.01)
    assert await verdict.failing() == [] and dependency.checks == 3


async def test_starting_and_stopping_show_at_once() -> None:
    dependency = CountedDependency()
    readiness = ready_with(dependency)
    verdict = SharedVerdict(readiness, clock=FakeClock())
    assert await verdict.failing() == []

    readiness.accepting = False

    assert await verdict.failing() == ["starting or stopping"]


async def test_a_flood_of_probes_on_the_public_readyz_asks_the_dependencies_once_a_second() -> None:
    probes = 300
    dependency = CountedDependency()
    app = create_app(service="edge", readiness=ready_with(dependency), title="t", version="1")
    async with serving_http(app, free_port()) as url, aiohttp.ClientSession() as http:
        started = asyncio.get_running_loop().time()

        async def probe() -> int:
            async with http.get(f"{url}/readyz") as answer:
                return answer.status

        statuses = await asyncio.gather(*(probe() for _ in range(probes)))
        seconds = asyncio.get_running_loop().time() - started

    assert statuses == [200] * probes
    assert dependency.checks <= seconds + 1
