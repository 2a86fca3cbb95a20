"""The broker behind one small interface, so nothing above it cares which broker it is.

A bus moves opaque bytes: the envelope is built and checked above it (`envelope.py`). What a bus
must guarantee: `publish` returns only once the broker holds the message, and a delivery is
redelivered until it is acked, at the delay the consumer asks for when it naks.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from chassis.settings import ServiceSettings

TRACE_HEADERS = ("traceparent", "tracestate")
EVENT_TYPE_HEADER = "Ce-Type"
REPLAYED_FOR_HEADER = "Agora-Replayed-For"
"""Names the one consumer a replayed dead letter is for: the others acked it when it first came."""
"""The full CloudEvents type, so tools can route or filter without parsing the body."""

_EVENT_TYPE = re.compile(r"^agora\.(?P<producer>[a-z][a-z0-9_]*)\.(?P<name>[A-Z][A-Za-z0-9]*)\.v(?P<version>\d+)$")


@dataclass(frozen=True)
class Retention:
    """How long the broker keeps history: long enough to rebuild a projection from it."""

    max_age_seconds: float = 30 * 24 * 3600
    max_bytes: int = 1024**3
    duplicate_window_seconds: float = 120
    max_event_bytes: int = 256 * 1024
    """The largest message (headers included) an event stream takes; Agora's events are a few KB.
    Its dead letter (the body at most twice over, and the error) must still fit NATS's default
    1 MiB limit, or a huge malformed message could be neither handled nor dead-lettered."""


class Delivery(Protocol):
    body: bytes
    headers: Mapping[str, str]
    origin: str
    """Where it was published (a NATS subject, an AMQP routing key)."""
    ref: str
    """The broker's identity for this message, the same on every redelivery (a stream sequence)."""
    deliveries: int
    """1 on the first delivery."""

    async def ack(self) -> None: ...
    async def nak(self, delay_seconds: float) -> None:
        """Hands the message back, to be redelivered no sooner than `delay_seconds`."""
        ...


DeliveryHandler = Callable[[Delivery], Coroutine[Any, Any, None]]


class Subscription(Protocol):
    async def stop(self) -> None:
        """Stops taking messages and waits for the handlers already running."""
        ...


@dataclass(frozen=True)
class DeadLetter:
    """A message a consumer gave up on, with why. `body` is the original bytes, verbatim."""

    consumer: str
    origin: str
    """Where the message was published (a NATS subject, an AMQP routing key): replay goes back there."""
    error: str
    deliveries: int
    dead_lettered_at: str
    body: bytes
    message_ref: str = ""
    """The broker's identity for the original message: one letter per message and consumer."""
    event_id: str | None = None
    event_type: str | None = None
    ref: str = field(default="", compare=False)
    """The broker's handle on the letter (a stream sequence), for replay and removal."""

    def to_json(self) -> bytes:
        record = asdict(self)
        del record["ref"]
        try:
            text = self.body.decode()
        except UnicodeDecodeError:
            text = None
        # Readable text unless JSON escaping more than doubles it (control characters, emoji):
        # then base64, a third bigger, so no letter outgrows the broker's message limit.
        if text is not None and len(json.dumps(text)) <= 2 * len(self.body) + 2:
            record["body"] = text
        else:
            record["body"] = None
            record["body_base64"] = base64.b64encode(self.body).decode()
        return json.dumps(record).encode()

    @classmethod
    def from_json(cls, raw: bytes, ref: str) -> DeadLetter:
        record = json.loads(raw)
        encoded = record.pop("body_base64", None)
        record["body"] = base64.b64decode(encoded) if encoded else record["body"].encode()
        return cls(**record, ref=ref)


MAX_DELIVERIES = 12
"""How often a consumer tries an event before dead-lettering it, unless it says otherwise. With
the consumer's backoff (0.5 s doubling, capped at 5 minutes) the tries span about 13 minutes, so
an outage of the consumer's database or mail server that long heals by itself; dead letters are
for events no retry can help."""

CONCURRENCY = 16
"""How many events a consumer handles at once, unless it says otherwise."""

HANDLER_TIMEOUT_SECONDS = 20.0
"""How long a handler may run before it counts as failed and is retried: shorter than the time
the broker waits for an answer before delivering the event again (NATS's ack_wait, 30 s), so a
hung handler neither holds its place for good nor runs beside its own redeliveries."""


class Bus(Protocol):
    city: str

    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def healthy(self) -> None:
        """Raises when the broker is unreachable; a readiness check."""
        ...

    async def publish(self, body: bytes, event_type: str, *, msg_id: str, headers: Mapping[str, str]) -> None:
        """Returns once the broker holds the message; raises otherwise. `msg_id` deduplicates."""
        ...

    async def subscribe(
        self,
        consumer: str,
        event_types: Collection[str],
        handler: DeliveryHandler,
        *,
        concurrency: int,
        max_deliveries: int,
    ) -> Subscription:
        """Durable: messages published while nobody listens wait for `consumer`. Calls `handler`
        for at most `concurrency` messages at once, in the order the broker hands them out.
        The consumer dead-letters after `max_deliveries`; the broker keeps redelivering a little
        beyond that, so a delivery lost in a crash still reaches the consumer's decision."""
        ...

    async def dead_letter(self, letter: DeadLetter) -> None: ...
    async def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]: ...
    async def replay(self, letter: DeadLetter) -> None:
        """Publishes the letter's body back to its origin, then removes the letter."""
        ...


def parse_event_type(event_type: str) -> tuple[str, str, int]:
    """`agora.orders.OrderPlaced.v1` → (`orders`, `OrderPlaced`, 1); ValueError otherwise."""
    match = _EVENT_TYPE.fullmatch(event_type)  # `$` alone would let a trailing newline through
    if match is None:
        raise ValueError(f"not an Agora event type: {event_type!r}")
    return match["producer"], match["name"], int(match["version"])


async def connect_bus(settings: ServiceSettings, *, retention: Retention | None = None) -> Bus:
    """The bus the settings ask for (`AGORA_BUS`), connected."""
    bus: Bus
    if settings.bus == "rabbitmq":
        from chassis.messaging.rabbit_bus import RabbitBus

        if not settings.rabbitmq_url:
            raise RuntimeError("AGORA_BUS=rabbitmq needs AGORA_RABBITMQ_URL")
        bus = RabbitBus(settings.rabbitmq_url, settings.city, retention=retention)
    else:
        from chassis.messaging.nats_bus import NatsBus

        bus = NatsBus(settings.nats_url, settings.city, retention=retention, name=settings.service,
                      inbox_prefix=settings.nats_inbox_prefix)
    await bus.connect()
    return bus
