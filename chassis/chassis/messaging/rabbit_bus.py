"""RabbitMQ (`AGORA_BUS=rabbitmq`): the same delivery semantics as NATS, built from AMQP parts.

- A durable topic exchange per producing service, `<city>.<producer>`; routing key
  `<city>.<producer>.<EventName>`. Publisher confirms: `publish` returns once the broker has
  the message. RabbitMQ does not deduplicate, so a relay crash between publish and mark
  delivers twice; the consumers' inboxes absorb it.
- A durable quorum queue per consuming service, `<city>.<consumer>`, bound to exactly the
  event types it handles. Quorum queues count broker redeliveries (`x-delivery-count`) and
  never lose a message to a full queue here (`reject-publish` overflow makes the publisher
  retry instead).
- Delayed retry: `nak(delay)` republishes the message, with its attempt count in a header, to
  a retry queue whose TTL is the delay and which dead-letters back into the consumer's queue;
  then acks the original (a crash in between gives a duplicate, never a loss).
- Dead letters: one durable queue per city, `<city>.dlq`, letters naming their consumer. Listing
  them stores a copy of each and acks the one taken, so no listing counts a delivery. A letter's id
  is its consumer and message, so listing collapses the copies a crash leaves into one. Replay
  sends a letter to its consumer's queue only, and takes the letters in one pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection, FieldValue
from aio_pika.connection import make_url
from aiormq.abc import DeliveredMessage

from chassis.logs import get_logger
from chassis.messaging.bus import (
    EVENT_TYPE_HEADER,
    MAX_DELIVERIES,
    DeadLetter,
    DeliveryHandler,
    Retention,
    parse_event_type,
)

log = get_logger(__name__)

ATTEMPTS_HEADER = "x-agora-attempts"
"""Failed attempts before this copy was republished to a retry queue."""
ORIGIN_HEADER = "x-agora-origin"
"""The routing key the event was first published with; a retry copy arrives under the queue's."""


def _count(headers: Mapping[str, Any], name: str) -> int:
    """A count our retry path or the broker sets, but any publisher can set too. A value that is not
    a non-negative integer counts as 0, not as a reason to dead-letter: the header is no part of the
    event, which may well be valid, and parking it would stall its saga until an operator replays
    it. Counting from 0 still bounds the retries, as our retry path rewrites the header with our own
    count and the queue's delivery limit counts every redelivery."""
    value = headers.get(name, 0)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    log.warning("rabbit_count_header_ignored", header=name, value=repr(value)[:100])
    return 0


def _letter_id(letter: DeadLetter) -> str:
    """One id per consumer and message (its body's hash when it came without an id): a consumer
    that dies between storing a letter and acking its message stores it again on the redelivery,
    and RabbitMQ does not deduplicate, so listing collapses letters by this id."""
    return f"{letter.consumer}:{letter.message_ref or hashlib.sha256(letter.body).hexdigest()}"


class _RabbitDelivery:
    def __init__(self, message: AbstractIncomingMessage, bus: RabbitBus, queue: str):
        self._message = message
        self._bus = bus
        self._queue = queue
        headers = message.headers or {}
        self.body = message.body
        self.headers: Mapping[str, str] = {key: str(value) for key, value in headers.items()}
        self.origin = str(headers.get(ORIGIN_HEADER) or message.routing_key or "")
        self.ref = message.message_id or ""
        self.deliveries = _count(headers, ATTEMPTS_HEADER) + _count(headers, "x-delivery-count") + 1

    async def ack(self) -> None:
        await self._message.ack()

    async def nak(self, delay_seconds: float) -> None:
        await self._bus._retry_later(self._message, self._queue, self.origin, self.deliveries, delay_seconds)
        await self._message.ack()


class _Subscription:
    def __init__(self, queue: AbstractQueue, tag: str, in_flight: set[asyncio.Task[Any]]):
        self._queue = queue
        self._tag = tag
        self._in_flight = in_flight

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._queue.cancel(self._tag)
        if self._in_flight:
            await asyncio.wait(self._in_flight)


class RabbitBus:
    def __init__(self, url: str, city: str, *, retention: Retention | None = None):
        self.city = city
        self._url = url
        self._retention = retention or Retention()
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}
        self._retry_queues: set[str] = set()
        self._declared_queues: set[str] = set()
        self._takes_our_arguments: dict[tuple[Any, ...], bool] = {}  # by queue and arguments

    async def connect(self) -> None:
        # Not aio_pika.connect_robust: when its first connect is cancelled (a caller's timeout on a
        # broker that does not answer) it leaves behind a reconnecting task that swallows
        # cancellation, so the process could never finish; `agora dlq` hung for ever.
        connection = aio_pika.RobustConnection(make_url(self._url))
        try:
            await connection.connect()
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        self._channel = await connection.channel(publisher_confirms=True)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def healthy(self) -> None:
        if self._connection is None or self._connection.is_closed:
            raise ConnectionError("not connected to RabbitMQ")

    @property
    def channel(self) -> AbstractChannel:
        if self._channel is None:
            raise RuntimeError("RabbitBus.connect() first")
        return self._channel

    def queue_name(self, consumer: str) -> str:
        return f"{self.city}.{consumer}"

    @property
    def dlq_name(self) -> str:
        return f"{self.city}.dlq"

    async def _exchange(self, producer: str) -> aio_pika.abc.AbstractExchange:
        if producer not in self._exchanges:
            self._exchanges[producer] = await self.channel.declare_exchange(
                f"{self.city}.{producer}", aio_pika.ExchangeType.TOPIC, durable=True
            )
        return self._exchanges[producer]

    async def _queue(self, name: str, **arguments: Any) -> AbstractQueue:
        """The durable quorum queue, declared with these arguments; or as it stands if an earlier
        Agora declared it with others (a delivery limit, a retention): a quorum queue's arguments
        never change, and deleting it would drop the messages waiting in it. (A consumer queue's
        delivery limit only bounds one copy's crash redeliveries; a retry is a new copy.)"""
        self._declared_queues.add(name)
        wanted = self._queue_arguments(arguments)
        key = (name, *sorted(wanted.items()))
        if key not in self._takes_our_arguments:
            self._takes_our_arguments[key] = await self._would_take(name, wanted)
        if self._takes_our_arguments[key]:
            return await self.channel.declare_queue(name, durable=True, arguments=wanted)
        return await self.channel.declare_queue(name, passive=True)

    def _queue_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-max-length-bytes": self._retention.max_bytes,
            "x-overflow": "reject-publish",
            **arguments,
        }

    async def _would_take(self, name: str, arguments: dict[str, Any]) -> bool:
        """Whether the broker declares the queue with these arguments; tried once per queue, on a
        channel of its own, since the broker closes a channel whose declare it refuses."""
        assert self._connection is not None
        trial = await self._connection.channel()
        try:
            await trial.declare_queue(name, durable=True, arguments=arguments)
        except aiormq.exceptions.ChannelPreconditionFailed as refused:
            log.warning("rabbit_queue_kept_as_declared", queue=name, reason=str(refused))
            return False
        finally:
            with contextlib.suppress(Exception):
                await trial.close()
        return True

    async def publish(self, body: bytes, event_type: str, *, msg_id: str, headers: Mapping[str, str]) -> None:
        producer, name, _ = parse_event_type(event_type)
        exchange = await self._exchange(producer)
        await exchange.publish(
            aio_pika.Message(
                body,
                message_id=msg_id,
                headers={**headers, EVENT_TYPE_HEADER: event_type},
                content_type="application/cloudevents+json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=f"{self.city}.{producer}.{name}",
        )

    async def settle_consumer(
        self, consumer: str, event_types: Collection[str], *, max_deliveries: int = MAX_DELIVERIES
    ) -> AbstractQueue:
        """The consumer's queue, bound to the types it handles: from then on they wait for it.
        A topic exchange drops what no queue is bound for, and the publisher's confirm still
        comes, so `agora up` declares every consumer's queue before any service starts."""
        # Above the consumer's own bound, so a delivery lost in a crash still reaches its decision;
        # beyond it (the consumer keeps dying on this message) the broker moves it to dead letters.
        queue = await self._queue(
            self.queue_name(consumer),
            **{
                "x-delivery-limit": max_deliveries + 3,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self.dlq_name,
                "x-dead-letter-strategy": "at-least-once",
            },
        )
        for event_type in event_types:
            producer, event_name, _ = parse_event_type(event_type)
            await queue.bind(await self._exchange(producer), routing_key=f"{self.city}.{producer}.{event_name}")
        return queue

    async def subscribe(
        self,
        consumer: str,
        event_types: Collection[str],
        handler: DeliveryHandler,
        *,
        concurrency: int,
        max_deliveries: int = MAX_DELIVERIES,
    ) -> _Subscription:
        await self.channel.set_qos(prefetch_count=concurrency)
        name = self.queue_name(consumer)
        queue = await self.settle_consumer(consumer, event_types, max_deliveries=max_deliveries)
        in_flight: set[asyncio.Task[Any]] = set()

        async def deliver(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            assert task is not None
            in_flight.add(task)
            try:
                await handler(_RabbitDelivery(message, self, name))
            except Exception as error:
                # aio_pika swallows what a callback raises, and a message left unsettled holds a
                # prefetch slot for ever. Requeued, it comes back, and the queue's delivery limit
                # moves it to dead letters if it keeps failing.
                log.error("rabbit_delivery_failed", error=f"{type(error).__name__}: {error}")
                if not message.processed:
                    with contextlib.suppress(Exception):  # a closed channel requeues it anyway
                        await message.nack(requeue=True)
            finally:
                in_flight.discard(task)

        tag = await queue.consume(deliver)
        return _Subscription(queue, tag, in_flight)

    async def _retry_later(
        self, message: AbstractIncomingMessage, queue: str, origin: str, deliveries: int, delay_seconds: float
    ) -> None:
        delay_ms = max(1, int(delay_seconds * 1000))
        retry_queue = f"{queue}.retry.{delay_ms}"
        if retry_queue not in self._retry_queues:
            # Classic, not quorum: the per-queue TTL must dead-letter the head promptly.
            self._declared_queues.add(retry_queue)
            await self.channel.declare_queue(
                retry_queue,
                durable=True,
                arguments={
                    "x-message-ttl": delay_ms,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue,
                },
            )
            self._retry_queues.add(retry_queue)
        headers = {key: value for key, value in (message.headers or {}).items() if not key.startswith("x-")}
        await self.channel.default_exchange.publish(
            aio_pika.Message(
                message.body,
                message_id=message.message_id,
                headers={**headers, ATTEMPTS_HEADER: deliveries, ORIGIN_HEADER: origin},
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=retry_queue,
        )

    async def dead_letter(self, letter: DeadLetter) -> None:
        await self._queue(self.dlq_name)
        await self._store_letter(letter)

    async def _store_letter(self, letter: DeadLetter) -> None:
        await self.channel.default_exchange.publish(
            aio_pika.Message(
                letter.to_json(),
                message_id=_letter_id(letter),
                content_type="application/json",
                headers={"consumer": letter.consumer},
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=self.dlq_name,
        )

    async def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        taken = await self._take_dead_letters()
        # The newest of each id, where the oldest stood.
        letters = list({letter.ref: letter for letter, _ in taken}.values())
        await self._put_back(letters, [message for _, message in taken])
        return [letter for letter in letters if consumer in (None, letter.consumer)]

    async def replay(self, letter: DeadLetter) -> None:
        """Takes letters from the head until this one, sends it to its consumer, confirmed, then
        acks it; the letters passed go back behind the rest, as listing puts them. Listing leaves
        the letters in the order it returns them, so `replay_all` finds each at (or near) the head:
        one pass over the queue, where taking and storing back every letter for each one took
        minutes for a few hundred. An interrupted replay leaves the letter in flight both replayed
        and stored (its consumer's inbox absorbs the second delivery) and any letter taken twice
        under one id, which listing collapses."""
        queue = await self._queue(self.dlq_name)
        passed: list[tuple[DeadLetter, AbstractIncomingMessage]] = []
        try:
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                stored = self._as_letter(message)
                if stored.ref != letter.ref:
                    passed.append((stored, message))
                    continue
                try:
                    await self._send_to_consumer(stored)
                except BaseException:
                    passed.append((stored, message))
                    raise
                await message.ack()
                return
            raise LookupError(f"no dead letter {letter.ref!r}")
        finally:
            await self._put_back([stored for stored, _ in passed], [message for _, message in passed])

    async def _send_to_consumer(self, letter: DeadLetter) -> None:
        """To the queue of the consumer that gave up on it, through the default exchange: back
        through the producer's exchange, every consumer of the type would get it again, and one
        that still fails would come back as a letter from each (k consumers, k² letters, then k³).
        Under the original message id, so a replay that fails again is a letter with the same id."""
        headers: dict[str, FieldValue] = {ORIGIN_HEADER: letter.origin}
        if letter.event_type:
            headers[EVENT_TYPE_HEADER] = letter.event_type
        returned = await self.channel.default_exchange.publish(
            aio_pika.Message(
                letter.body,
                message_id=letter.message_ref or None,
                headers=headers,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=self.queue_name(letter.consumer),
            mandatory=True,
        )
        if isinstance(returned, DeliveredMessage):  # the broker confirms what it could not route, too
            raise LookupError(f"consumer {letter.consumer!r} has no queue {self.queue_name(letter.consumer)!r}")

    async def _take_dead_letters(self) -> list[tuple[DeadLetter, AbstractIncomingMessage]]:
        """Every letter, held unacknowledged (so each is seen once) until the caller settles it."""
        queue = await self._queue(self.dlq_name)
        taken = []
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            taken.append((self._as_letter(message), message))
        return taken

    async def _put_back(self, letters: Iterable[DeadLetter], taken: Iterable[AbstractIncomingMessage]) -> None:
        """Stores a copy of each letter, confirmed, then acks the messages taken. Handing a letter back
        (nack and requeue) would raise its delivery count, and quorum queues drop a message past
        their delivery limit: 20 by default from RabbitMQ 4.0, so the 21st listing would have lost
        every letter. A crash between the copy and the ack leaves a letter twice, never none."""
        for letter in letters:
            await self._store_letter(letter)
        for message in taken:
            await message.ack()

    def _as_letter(self, message: AbstractIncomingMessage) -> DeadLetter:
        headers = message.headers or {}
        if "x-death" not in headers:
            letter = DeadLetter.from_json(message.body, ref="")
            return dataclasses.replace(letter, ref=_letter_id(letter))
        # Moved here by the broker itself: the consumer died on every one of its deliveries.
        death: dict[str, Any] = headers["x-death"][0]  # type: ignore[index, assignment]
        letter = DeadLetter(
            consumer=str(death["queue"]).removeprefix(f"{self.city}."),
            origin=str(headers.get(ORIGIN_HEADER) or death["routing-keys"][0]),
            error="delivery limit reached without an outcome",
            deliveries=int(death["count"]),
            dead_lettered_at=str(death["time"]),
            body=message.body,
            event_type=str(headers[EVENT_TYPE_HEADER]) if EVENT_TYPE_HEADER in headers else None,
            message_ref=message.message_id or "",
        )
        return dataclasses.replace(letter, ref=_letter_id(letter))

    async def delete_everything(self) -> None:
        """Removes this city's queues and exchanges: for tests."""
        for name in self._declared_queues:
            with contextlib.suppress(Exception):
                await self.channel.queue_delete(name)
        for exchange in self._exchanges.values():
            with contextlib.suppress(Exception):
                await exchange.delete()
