"""Sets up the city's event bus before any service starts, in a process of its own that
`agora up` runs (`infra.BusSetup`):

    python -m agora_cli.bus_setup nats|rabbitmq CITY SERVICE...   (then the URL on stdin)

On NATS, every producer's stream and every consuming service's durable consumers, which the
services themselves may not create; on RabbitMQ, every consuming service's queue, so that an
event published before its consumer first runs waits for it. What each service consumes comes
from its own subscription table, `<service>.handlers.SUBSCRIPTIONS`.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from chassis.messaging.envelope import contracts_dir
from chassis.messaging.nats_bus import DLQ, NatsBus
from chassis.messaging.rabbit_bus import RabbitBus

SETTLE_SECONDS = 15.0


async def settle_bus(url: str, city: str, subscriptions: Mapping[str, list[str]]) -> None:
    """Creates every producer's stream on the city's NATS, and the durable consumers of every
    service in `subscriptions`, or brings them to the current settings: `url` must carry the
    operator's login."""
    producers = sorted(path.name for path in contracts_dir().iterdir() if path.is_dir())
    bus = NatsBus(url, city, name=f"{city}-operator")
    try:
        # nats-py retries a refused login for ever: a wrong password must fail the start clearly.
        async with asyncio.timeout(SETTLE_SECONDS):
            await bus.connect()
            for producer in [*producers, DLQ]:
                await bus.settle_stream(producer)
            for service, event_types in subscriptions.items():
                await bus.settle_consumer(service, event_types)
    except TimeoutError:
        raise SystemExit(f"NATS did not let the operator set up the streams within {SETTLE_SECONDS:.0f} s "
                         "(check its address and login, AGORA_NATS_URL if external)") from None
    finally:
        await bus.close()


async def declare_rabbit_consumers(url: str, city: str, subscriptions: Mapping[str, list[str]]) -> None:
    """Declares the queue of every service in `subscriptions`, bound to the types it handles.
    RabbitMQ drops an event that no queue is bound for, so otherwise the catalog's first events
    could go out before inventory's queue exists, and be lost."""
    bus = RabbitBus(url, city)
    await bus.connect()
    try:
        for service, event_types in subscriptions.items():
            await bus.declare_consumer(service, event_types)
    finally:
        await bus.close()


def subscriptions(services: Iterable[str]) -> dict[str, list[str]]:
    """The event types in each installed service's subscription table
    (`<service>.handlers.SUBSCRIPTIONS`, the very mapping its consumer runs)."""
    found = {}
    for service in services:
        # Found without importing it: a service that is a plain module (the CLI tests' stand-ins)
        # reads its settings when imported. A package's handlers are imported, __init__ first.
        package = importlib.util.find_spec(service)
        if package is None or not any(
            (Path(folder) / "handlers.py").is_file() for folder in package.submodule_search_locations or ()
        ):
            continue
        table = getattr(importlib.import_module(f"{service}.handlers"), "SUBSCRIPTIONS", None)
        if table:
            found[service] = sorted(table)
    return found


def main(arguments: list[str]) -> None:
    bus, city, *services = arguments
    consumers = subscriptions(services)
    url = sys.stdin.readline().strip()
    if not url:  # the supervisor gave up on the broker, or died
        raise SystemExit("no broker URL given")
    if bus == "nats":
        asyncio.run(settle_bus(url, city, consumers))
    else:
        asyncio.run(declare_rabbit_consumers(url, city, consumers))


if __name__ == "__main__":
    main(sys.argv[1:])
