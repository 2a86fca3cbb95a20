"""Reliable events: a transactional outbox and its relay, inboxes, consumers and dead letters.

Nothing is lost (the outbox row outlives any crash; acks come only after commit) and nothing
is applied twice (the inbox, written in the handler's transaction). See docs/messaging.md.

A producer: `Outbox(service).add(conn, "OrderPlaced", data, subject=order_id)` inside its
transaction, and one `OutboxRelay(pool, bus, service=...)` worker. A consumer:
`Consumer(service, bus, PostgresInbox(pool), {"agora.orders.OrderPlaced.v1": reserve_stock})`.
"""

from chassis.messaging.bus import Bus, DeadLetter, Delivery, Retention, connect_bus
from chassis.messaging.consumer import Consumer, Handler, PermanentFailure
from chassis.messaging.dlq import list_dead_letters, replay_all, replay_dead_letter
from chassis.messaging.envelope import Envelope, MalformedEvent
from chassis.messaging.inbox import Inbox, PostgresInbox, RedisInbox
from chassis.messaging.nats_bus import NatsBus
from chassis.messaging.outbox import MIGRATIONS, Outbox, OutboxRelay, add_to_outbox

__all__ = [
    "MIGRATIONS",
    "Bus",
    "Consumer",
    "DeadLetter",
    "Delivery",
    "Envelope",
    "Handler",
    "Inbox",
    "MalformedEvent",
    "NatsBus",
    "Outbox",
    "OutboxRelay",
    "PermanentFailure",
    "PostgresInbox",
    "RedisInbox",
    "Retention",
    "add_to_outbox",
    "connect_bus",
    "list_dead_letters",
    "replay_all",
    "replay_dead_letter",
]
