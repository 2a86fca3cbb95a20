"""`agora dlq replay` on RabbitMQ with a few hundred letters: its time limit is for connecting,
not for the replay, which moves one letter at a time."""

from __future__ import annotations

import asyncio

import pytest

from agora_cli import dlq
from chassis.messaging import list_dead_letters
from chassis.messaging.bus import DeadLetter
from chassis.messaging.rabbit_bus import RabbitBus
from chassis.settings import ServiceSettings
from tests.chassis.messaging.support import THING_MADE
from tests.conftest import RABBITMQ_URL

LETTERS = 600


def test_agora_dlq_replays_hundreds_of_letters_on_rabbitmq_past_its_connect_limit(
    city: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = RabbitBus(RABBITMQ_URL, city)

    async def seed() -> None:
        await bus.connect()
        await bus.settle_consumer("watcher", [THING_MADE])
        for n in range(LETTERS):
            await bus.dead_letter(DeadLetter(
                consumer="watcher", origin=f"{city}.things.ThingMade", error="boom", deliveries=8,
                dead_lettered_at="2026-11-24T10:00:00Z", body=b'{"n": %d}' % n, event_type=THING_MADE,
                message_ref=f"event-{n}",
            ))

    async def what_is_left() -> tuple[int, int]:
        watcher = await bus.channel.declare_queue(bus.queue_name("watcher"), passive=True)
        replayed = 0
        while (message := await watcher.get(no_ack=True, fail=False)) is not None:
            replayed += message.body.startswith(b'{"n": ')
        return replayed, len(await list_dead_letters(bus))

    async def clean_up() -> None:
        await bus.delete_everything()
        await bus.close()

    settings = ServiceSettings(service="cli", http_port=0, city=city, bus="rabbitmq", rabbitmq_url=RABBITMQ_URL)
    monkeypatch.setattr(dlq, "_settings", lambda: settings)
    monkeypatch.setattr(dlq, "BUS_TIMEOUT_SECONDS", 1.0)  # enough to connect, not to replay them all
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(seed())
        assert dlq._run(lambda bus: dlq._messaging().replay_all(bus)) == LETTERS
        assert loop.run_until_complete(what_is_left()) == (LETTERS, 0)
    finally:
        loop.run_until_complete(clean_up())
        loop.close()
