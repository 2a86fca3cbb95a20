"""A relay or a consumer in a process of its own, so a test can SIGKILL it at the worst moment.

    worker.py relay DSN NATS_URL CITY NAME [--die-after-publish]
    worker.py consume DSN NATS_URL CITY [--die-before-ack]

Every message a relay publishes carries a `relay` header with NAME, so a test can tell which
instance published what.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Mapping
from typing import Any

import asyncpg

from chassis.messaging import Consumer, Delivery, NatsBus, OutboxRelay, PostgresInbox


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class RelayBus(NatsBus):
    def __init__(self, *args: Any, name: str, die_after_publish: bool, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._relay_name = name
        self._die = die_after_publish

    async def publish(self, body: bytes, event_type: str, *, msg_id: str, headers: Mapping[str, str]) -> None:
        await super().publish(body, event_type, msg_id=msg_id, headers={**headers, "relay": self._relay_name})
        if self._die:  # the broker has it; the outbox row is not marked yet
            die()


class DieBeforeAck:
    def __init__(self, delivery: Delivery):
        self._delivery = delivery
        self.body, self.headers, self.origin, self.ref = delivery.body, delivery.headers, delivery.origin, delivery.ref
        self.deliveries = delivery.deliveries

    async def ack(self) -> None:  # the handler's transaction has committed
        die()

    async def nak(self, delay_seconds: float) -> None:
        await self._delivery.nak(delay_seconds)


class DyingConsumerBus(NatsBus):
    async def subscribe(self, consumer, event_types, handler, **kwargs):  # type: ignore[no-untyped-def]
        async def dying(delivery: Delivery) -> None:
            await handler(DieBeforeAck(delivery))

        return await super().subscribe(consumer, event_types, dying, **kwargs)


async def record_effect(event: Any, conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO effects VALUES ($1, $2)", event.id, event.data["amount"])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["relay", "consume"])
    parser.add_argument("dsn")
    parser.add_argument("nats_url")
    parser.add_argument("city")
    parser.add_argument("name", nargs="?", default="relay")
    parser.add_argument("--die-after-publish", action="store_true")
    parser.add_argument("--die-before-ack", action="store_true")
    args = parser.parse_args()

    pool = await asyncpg.create_pool(args.dsn, min_size=1, max_size=4, server_settings={"application_name": args.name})
    bus: NatsBus
    if args.role == "relay":
        bus = RelayBus(args.nats_url, args.city, name=args.name, die_after_publish=args.die_after_publish)
        worker: Any = OutboxRelay(
            pool, bus, service="things", poll_interval=0.2, standby_interval=0.2, stalled_after_seconds=1.5
        )
    else:
        bus = (DyingConsumerBus if args.die_before_ack else NatsBus)(args.nats_url, args.city, ack_wait_seconds=2)
        worker = Consumer("watcher", bus, PostgresInbox(pool), {"agora.things.ThingMade.v1": record_effect})
    await bus.connect()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await worker.start()
    await stop.wait()
    await worker.stop()
    await bus.close()
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
