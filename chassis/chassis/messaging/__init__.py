"""Reliable events: a transactional outbox and relay, inboxes, consumers and dead letters.

Nothing is lost (the outbox row outlives any crash; acks come only after commit) and nothing
is applied twice (the inbox, written in the handler's transaction). See docs/messaging.md.
"""

from pathlib import Path

from chassis.messaging.bus import Bus, Delivery, Retention
from chassis.messaging.consumer import Consumer, Handler
from chassis.messaging.dlq import list_dead_letters, replay_dead_letters
from chassis.messaging.envelope import Event, MalformedEvent, event_type
from chassis.messaging.inbox import Inbox, PostgresInbox, RedisInbox
from chassis.messaging.nats_bus import NatsBus
from chassis.messaging.outbox import Outbox, OutboxRelay

MIGRATIONS = Path(__file__).parent / "migrations"


def connect_bus(settings) -> Bus:  # type: ignore[no-untyped-def]
    """The broker the settings name; not yet connected."""
    if settings.bus == "rabbitmq":
        from chassis.messaging.rabbit_bus import RabbitBus

        return RabbitBus(settings.rabbitmq_url, settings.city)
    return NatsBus(settings.nats_url, settings.city)


__all__ = [
    "MIGRATIONS", "Bus", "Consumer", "Delivery", "Event", "Handler", "Inbox", "MalformedEvent", "NatsBus",
    "Outbox", "OutboxRelay", "PostgresInbox", "RedisInbox", "Retention", "connect_bus", "event_type",
    "list_dead_letters", "replay_dead_letters",
]
