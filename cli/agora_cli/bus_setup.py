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


async def set_up(bus: NatsBus | RabbitBus, subscriptions: Mapping[str, list[str]]) -> None:
    """Connects with the operator's login; on NATS creates every producer's stream, or brings it
    to the current settings; then the same for each consuming service's consumers (NATS durable
    consumers, RabbitMQ queues and their bindings)."""
    nats = isinstance(bus, NatsBus)
    try:
        # nats-py retries a refused login for ever: a wrong password must fail the start clearly.
        async with asyncio.timeout(SETTLE_SECONDS):
            await bus.connect()
            if nats:
                producers = sorted(path.name for path in contracts_dir().iterdir() if path.is_dir())
                for producer in [*producers, DLQ]:
                    await bus.settle_stream(producer)
            for service, event_types in subscriptions.items():
                await bus.settle_consumer(service, event_types)
    except TimeoutError:
        broker, what, variable = ("NATS", "streams", "AGORA_NATS_URL") if nats else ("RabbitMQ", "queues", "AGORA_RABBITMQ_URL")
        raise SystemExit(f"{broker} did not let the operator set up the {what} within {SETTLE_SECONDS:.0f} s "
                         f"(check its address and login, {variable} if external)") from None
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
    broker = NatsBus(url, city, name=f"{city}-operator") if bus == "nats" else RabbitBus(url, city)
    asyncio.run(set_up(broker, consumers))


if __name__ == "__main__":
    main(sys.argv[1:])
