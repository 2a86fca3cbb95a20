"""The gateway's micro-cache: answers kept for their time, one load per cold key, and a write
through the gateway forgets them all, even a load that was under way when it happened."""

from __future__ import annotations

import asyncio

from gateway.microcache import MicroCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Upstream:
    """Answers with the version of the data it holds at the moment it is read."""

    def __init__(self) -> None:
        self.version = 1
        self.reads = 0
        self.held: asyncio.Event | None = None

    async def load(self) -> tuple[bytes, bool]:
        self.reads += 1
        version = self.version
        if self.held is not None:
            await self.held.wait()
        return f"v{version}".encode(), True


async def test_an_answer_is_kept_for_its_time_then_read_again() -> None:
    clock, upstream = Clock(), Upstream()
    cache = MicroCache(1.0, clock=clock)
    assert await cache.get("products", upstream.load) == b"v1"
    upstream.version = 2
    assert await cache.get("products", upstream.load) == b"v1"
    clock.now = 1.5
    assert await cache.get("products", upstream.load) == b"v2"
    assert upstream.reads == 2


async def test_concurrent_misses_share_one_load() -> None:
    upstream = Upstream()
    upstream.held = asyncio.Event()
    cache = MicroCache(1.0, clock=Clock())
    readers = [asyncio.create_task(cache.get("products", upstream.load)) for _ in range(20)]
    await asyncio.sleep(0)
    upstream.held.set()
    assert set(await asyncio.gather(*readers)) == {b"v1"}
    assert upstream.reads == 1


async def test_after_a_write_clears_it_the_next_read_shows_the_write() -> None:
    upstream = Upstream()
    cache = MicroCache(1.0, clock=Clock())
    assert await cache.get("products", upstream.load) == b"v1"
    upstream.version = 2
    cache.clear()
    assert await cache.get("products", upstream.load) == b"v2"


async def test_a_load_under_way_when_a_write_clears_it_is_neither_kept_nor_joined() -> None:
    upstream = Upstream()
    first_load = upstream.held = asyncio.Event()
    cache = MicroCache(1.0, clock=Clock())
    before_the_write = asyncio.create_task(cache.get("products", upstream.load))
    await asyncio.sleep(0)
    upstream.version = 2
    cache.clear()
    upstream.held = None
    after_the_write = await cache.get("products", upstream.load)  # not the old load's answer
    assert after_the_write == b"v2"
    first_load.set()
    assert await before_the_write == b"v1"  # it asked before the write
    assert await cache.get("products", upstream.load) == b"v2"  # and the old answer was not kept
