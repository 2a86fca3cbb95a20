"""A broker restart in the middle of traffic loses nothing: the outbox holds what the broker
has not acknowledged, and consumers resume where their durable consumer left off."""

from __future__ import annotations

import asyncio

from chassis.messaging import Consumer, NatsBus, OutboxRelay, PostgresInbox
from tests.chassis.messaging.support import (
    THING_MADE,
    amounts,
    connect_when_up,
    effects_reach,
    make_thing,
    record_effect,
)


async def test_a_broker_restart_in_the_middle_of_traffic_loses_nothing(pool, city, own_nats) -> None:
    bus = NatsBus(own_nats.url, city, ack_wait_seconds=2, pull_expires_seconds=1)
    await connect_when_up(bus)
    try:
        async with (
            OutboxRelay(pool, bus, service="things", poll_interval=0.2),
            Consumer("watcher", bus, PostgresInbox(pool), {THING_MADE: record_effect}),
        ):
            producing = asyncio.create_task(_produce(pool, 150))
            await effects_reach(pool, 40)
            own_nats.stop()
            await asyncio.sleep(1)
            own_nats.start()
            await producing
            await effects_reach(pool, 150)
            await asyncio.sleep(0.5)
        assert await amounts(pool) == list(range(150))
    finally:
        await bus.close()


async def _produce(pool, count: int) -> None:  # type: ignore[no-untyped-def]
    for n in range(count):
        await make_thing(pool, n)
        await asyncio.sleep(0.01)
