"""What the relay and the consumer tell operators: an outbox falling behind while the broker
refuses publishes, its recovery, and how long handlers take."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import asyncpg
from prometheus_client import REGISTRY

from chassis.messaging import Consumer, Envelope, NatsBus, OutboxRelay, PostgresInbox
from tests.chassis.messaging.support import THING_MADE, amounts, effects_reach, eventually, make_thing, record_effect

SERVICE = "things_lagging"  # a label of its own: other tests' relays set the gauges of "things"
CONSUMER = "timed_watcher"
HANDLER_SECONDS = 0.1


class RefusingBus:
    """The real bus, except that while `refusing` the broker never acknowledges a publish."""

    def __init__(self, bus: NatsBus):
        self._bus = bus
        self.refusing = True

    async def publish(self, body: bytes, event_type: str, *, msg_id: str, headers: Mapping[str, str]) -> None:
        if self.refusing:
            raise ConnectionError("nats: no responders available for request")
        await self._bus.publish(body, event_type, msg_id=msg_id, headers=headers)


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def unpublished() -> float:
    return sample("agora_outbox_unpublished", {"service": SERVICE})


def oldest_age() -> float:
    return sample("agora_outbox_oldest_unpublished_age_seconds", {"service": SERVICE})


def failures() -> float:
    return sample("agora_outbox_publish_failures_total", {"service": SERVICE})


async def holds(condition: bool) -> bool:
    return condition


async def test_the_outbox_lag_shows_while_the_broker_refuses_and_clears_once_it_is_back(pool, bus) -> None:
    refusing = RefusingBus(bus)
    failures_before = failures()
    async with OutboxRelay(pool, refusing, service=SERVICE, poll_interval=0.1, max_backoff=0.2):  # type: ignore[arg-type]
        await make_thing(pool, 1)
        await make_thing(pool, 2)
        await eventually(lambda: holds(unpublished() == 2 and failures() >= failures_before + 2))
        first_age = oldest_age()
        assert first_age > 0
        await asyncio.sleep(0.3)
        await eventually(lambda: holds(oldest_age() >= first_age + 0.2))  # it grows while nothing leaves
        assert unpublished() == 2

        refusing.refusing = False
        await eventually(lambda: holds(unpublished() == 0 and oldest_age() == 0))
        failures_after = failures()
        await asyncio.sleep(0.3)
        assert failures() == failures_after, "a relay that publishes counts no more failures"
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_the_handler_duration_is_observed_for_every_event_handled(pool, bus) -> None:
    labels = {"consumer": CONSUMER, "event_type": THING_MADE}
    count_before = sample("agora_event_handler_duration_seconds_count", labels)
    sum_before = sample("agora_event_handler_duration_seconds_sum", labels)

    async def slow_effect(event: Envelope, conn: asyncpg.Connection) -> None:
        await asyncio.sleep(HANDLER_SECONDS)
        await record_effect(event, conn)

    async with (
        OutboxRelay(pool, bus, service=SERVICE, poll_interval=0.1),
        Consumer(CONSUMER, bus, PostgresInbox(pool), {THING_MADE: slow_effect}),
    ):
        for amount in (1, 2, 3):
            await make_thing(pool, amount)
        await effects_reach(pool, 3)
        await eventually(lambda: holds(sample("agora_event_handler_duration_seconds_count", labels) == count_before + 3))
    assert await amounts(pool) == [1, 2, 3]
    assert sample("agora_event_handler_duration_seconds_sum", labels) - sum_before >= 3 * HANDLER_SECONDS
