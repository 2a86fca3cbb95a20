"""NATS JetStream: a stream per producing service, a durable pull consumer per consuming one.

Names (docs/runtime-contract.md): stream `<CITY>_<PRODUCER>` on subjects `<city>.<producer>.>`,
each event type on `<city>.<producer>.<EventName>`; durable consumer named after the consuming
service, one per producer stream; dead letters in `<CITY>_DLQ` on `<city>.dlq.<consumer>`.
Features beyond NATS 2.9 (the machine's server) are used only where the server has them: a
consumer filters on exactly the subjects it handles when the server takes several filter
subjects (2.10), and on its producer's whole subject space before that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from chassis.logs import get_logger
from chassis.messaging.bus import (
    CONCURRENCY,
    EVENT_TYPE_HEADER,
    MAX_DELIVERIES,
    REPLAYED_FOR_HEADER,
    DeadLetter,
    DeliveryHandler,
    Retention,
    parse_event_type,
)

log = get_logger(__name__)

DLQ = "dlq"

_STREAM_EXISTS_WITH_OTHER_SETTINGS = 10058


def stream_name(city: str, producer: str) -> str:
    return f"{city}_{producer}".upper()


def _producers(event_types: Collection[str]) -> list[str]:
    return sorted({parse_event_type(event_type)[0] for event_type in event_types})


def _without_login(url: str) -> tuple[str, dict[str, str]]:
    """The server's URL, and the user and password it held, passed to nats-py on their own so
    that no error or log line it writes can show the password with the URL."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, {}
    server = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
    return server, {"user": unquote(parts.username), "password": unquote(parts.password or "")}


class _NatsDelivery:
    def __init__(self, msg: Msg):
        self._msg = msg
        self.body = msg.data
        self.headers: Mapping[str, str] = msg.headers or {}
        self.origin = msg.subject
        self.ref = f"{msg.metadata.stream}:{msg.metadata.sequence.stream}"
        self.deliveries = msg.metadata.num_delivered

    async def ack(self) -> None:
        await self._msg.ack()

    async def nak(self, delay_seconds: float) -> None:
        await self._msg.nak(delay=delay_seconds)


class _PullLoop:
    """Keeps a pull request open for as many messages as there are free handler slots, and
    starts a handler the moment each message arrives: no waiting for a batch to fill, so an
    idle consumer sees an event within a network round trip of its publication."""

    def __init__(
        self, nc: nats.NATS, stream: str, durable: str, handler: DeliveryHandler, *, concurrency: int, expires: float
    ):
        self._nc = nc
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._handler = handler
        self._concurrency = concurrency
        self._expires = expires
        self._in_flight: set[asyncio.Task[None]] = set()
        self._inbox = nc.new_inbox()
        self._sub: NatsSubscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._sub is not None
        while True:
            free = self._concurrency - len(self._in_flight)
            if free <= 0:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                continue
            request = {"batch": free, "expires": int(self._expires * 1e9)}
            try:
                await self._nc.publish(self._next_subject, json.dumps(request).encode(), reply=self._inbox)
            except Exception as error:  # closed or reconnecting: nats-py reconnects underneath
                log.warning("nats_pull_failed", error=str(error) or type(error).__name__)
                await asyncio.sleep(0.5)
                continue
            received = 0
            while received < free:
                try:
                    msg = await self._sub.next_msg(timeout=self._expires + 1)
                except NatsTimeout:
                    break  # the request died with a connection: ask again
                headers = msg.headers or {}
                # The server's notices come without a reply subject; an event always has one (its
                # ack), whatever headers its publisher set, a `Status` among them.
                status = headers.get("Status") if not msg.reply else None
                if status == "100":  # idle heartbeat
                    continue
                if status is not None:
                    if status not in ("404", "408"):  # e.g. 409 while a stream is being recreated
                        log.warning("nats_pull_status", status=status, description=headers.get("Description"))
                        await asyncio.sleep(0.5)
                    break
                received += 1
                task = asyncio.create_task(self._handler(_NatsDelivery(msg)))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)

    async def stop(self) -> None:
        """Stops pulling, lets running handlers finish, hands back what was pulled but not started."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._in_flight:
            await asyncio.wait(self._in_flight)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                while True:
                    msg = await self._sub.next_msg(timeout=0.05)
                    if msg.reply:
                        await msg.nak()
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()


class _Subscription:
    def __init__(self, loops: list[_PullLoop]):
        self._loops = loops

    async def stop(self) -> None:
        await asyncio.gather(*(loop.stop() for loop in self._loops))


class NatsBus:
    def __init__(
        self,
        url: str,
        city: str,
        *,
        retention: Retention | None = None,
        ack_wait_seconds: float = 30,
        pull_expires_seconds: float = 5,
        name: str | None = None,
        inbox_prefix: str = "_INBOX",
    ):
        self.city = city
        self._url = url
        self._name = name or city
        self._inbox_prefix = inbox_prefix
        self._retention = retention or Retention()
        self._ack_wait = ack_wait_seconds
        self._pull_expires = pull_expires_seconds
        self._nc: nats.NATS | None = None
        self._js: nats.js.JetStreamContext | None = None
        self._streams: set[str] = set()
        self._closing = False

    async def connect(self) -> None:
        server, login = _without_login(self._url)
        self._nc = await nats.connect(
            server,
            **login,
            inbox_prefix=self._inbox_prefix,
            name=self._name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            connect_timeout=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnect,
            reconnected_cb=self._on_reconnect,
        )
        self._js = self._nc.jetstream(timeout=5)

    async def close(self) -> None:
        self._closing = True
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()

    async def healthy(self) -> None:
        if self._nc is None or not self._nc.is_connected:
            raise ConnectionError("not connected to NATS")

    @property
    def jetstream(self) -> nats.js.JetStreamContext:
        if self._js is None:
            raise RuntimeError("NatsBus.connect() first")
        return self._js

    def subject(self, event_type: str) -> str:
        producer, name, _ = parse_event_type(event_type)
        return f"{self.city}.{producer}.{name}"

    async def ensure_stream(self, producer: str) -> str:
        """The producer's stream, created if it is missing (where the login may: not a service's
        on the embedded NATS, where `agora up` creates every stream first). An existing one keeps
        its settings: `settle_stream` sets them, run by the operator at `agora up`. A service never
        changes them, as the embedded NATS forbids: a shorter `max_age` would erase history, and a
        `republish` would put events under another's name."""
        name = stream_name(self.city, producer)
        if name not in self._streams:
            try:
                await self.jetstream.stream_info(name)
            except NotFoundError:
                try:
                    await self.jetstream.add_stream(self._stream_config(producer))
                except nats.js.errors.BadRequestError as error:
                    if error.err_code != _STREAM_EXISTS_WITH_OTHER_SETTINGS:  # not a race lost to its creator
                        raise
            self._streams.add(name)
        return name

    async def settle_stream(self, producer: str) -> None:
        """Creates the producer's stream, or brings an existing one to this bus's settings."""
        config = self._stream_config(producer)
        try:
            await self.jetstream.add_stream(config)
        except nats.js.errors.BadRequestError as error:
            if error.err_code != _STREAM_EXISTS_WITH_OTHER_SETTINGS:
                raise
            await self.jetstream.update_stream(config)
        self._streams.add(config.name or "")

    def _stream_config(self, producer: str) -> StreamConfig:
        return StreamConfig(
            name=stream_name(self.city, producer),
            subjects=[f"{self.city}.{producer}.>"],
            storage=StorageType.FILE,
            max_age=self._retention.max_age_seconds,
            max_bytes=self._retention.max_bytes,
            duplicate_window=self._retention.duplicate_window_seconds,
            max_msg_size=-1 if producer == DLQ else self._retention.max_event_bytes,
        )

    async def publish(self, body: bytes, event_type: str, *, msg_id: str, headers: Mapping[str, str]) -> None:
        stream = await self.ensure_stream(parse_event_type(event_type)[0])
        await self.jetstream.publish(
            self.subject(event_type),
            body,
            stream=stream,
            headers={**headers, EVENT_TYPE_HEADER: event_type, "Nats-Msg-Id": msg_id},
        )

    def _filter(self, producer: str, event_types: Collection[str]) -> dict[str, Any]:
        """The consumer's filter on the producer's stream. With several filter subjects (NATS
        2.10) only the handled types are delivered: every other event of the producer, over half
        of a checkout's deliveries, would cost the broker a delivery and an ack for nothing.
        Before 2.10, the producer's whole subject space; the consumer acks the rest unread."""
        assert self._nc is not None
        version = self._nc.connected_server_version
        if (version.major, version.minor) < (2, 10):
            return {"filter_subject": f"{self.city}.{producer}.>"}
        subjects = {self.subject(event_type) for event_type in event_types if parse_event_type(event_type)[0] == producer}
        return {"filter_subjects": sorted(subjects)}

    async def settle_consumer(
        self,
        consumer: str,
        event_types: Collection[str],
        *,
        concurrency: int = CONCURRENCY,
        max_deliveries: int = MAX_DELIVERIES,
    ) -> None:
        """Creates the consumer's durable consumers, or brings them to these settings: the
        operator's, at `agora up`, so that no service needs to create or change a consumer
        (the embedded NATS lets it do neither)."""
        for producer in _producers(event_types):
            stream = await self.ensure_stream(producer)
            await self.jetstream.add_consumer(
                stream, self._consumer_config(consumer, producer, event_types, concurrency, max_deliveries)
            )

    async def subscribe(
        self,
        consumer: str,
        event_types: Collection[str],
        handler: DeliveryHandler,
        *,
        concurrency: int,
        max_deliveries: int = MAX_DELIVERIES,
    ) -> _Subscription:
        """One durable consumer per producer stream, filtered on the handled types where the
        server can (`_filter`). It is created, or brought to the new filter, only if it is not
        already as wanted: `agora up` has made it so on the embedded NATS. The server's
        redelivery bound sits above the consumer's own so a delivery lost in a crash still gets
        its dead letter."""
        assert self._nc is not None
        loops = []
        for producer in _producers(event_types):
            stream = await self.ensure_stream(producer)
            wanted = self._consumer_config(consumer, producer, event_types, concurrency, max_deliveries)
            if not await self._consumer_is(stream, wanted):
                await self.jetstream.add_consumer(stream, wanted)
            loop = _PullLoop(self._nc, stream, consumer, handler, concurrency=concurrency, expires=self._pull_expires)
            await loop.start()
            loops.append(loop)
        return _Subscription(loops)

    def _consumer_config(
        self, consumer: str, producer: str, event_types: Collection[str], concurrency: int, max_deliveries: int
    ) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=consumer,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            **self._filter(producer, event_types),
            ack_wait=self._ack_wait,
            max_deliver=max_deliveries + 3,
            max_ack_pending=max(1000, concurrency * 4),
        )

    async def _consumer_is(self, stream: str, wanted: ConsumerConfig) -> bool:
        assert wanted.durable_name is not None
        try:
            info = await self.jetstream.consumer_info(stream, wanted.durable_name)
        except NotFoundError:
            return False
        config = info.config

        def filters(of: ConsumerConfig) -> list[str]:
            return sorted(of.filter_subjects or ([of.filter_subject] if of.filter_subject else []))

        return (
            filters(config) == filters(wanted)
            and round(config.ack_wait or 0) == round(wanted.ack_wait or 0)
            and (config.max_deliver, config.max_ack_pending) == (wanted.max_deliver, wanted.max_ack_pending)
        )

    async def dead_letter(self, letter: DeadLetter) -> None:
        stream = await self.ensure_stream(DLQ)
        # A crash after this publish and before the original is acked dead-letters it again: dedupe.
        await self.jetstream.publish(
            f"{self.city}.{DLQ}.{letter.consumer}",
            letter.to_json(),
            stream=stream,
            headers={"Nats-Msg-Id": f"dlq:{letter.consumer}:{letter.message_ref}"},
        )

    async def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        stream = await self.ensure_stream(DLQ)
        subject = f"{self.city}.{DLQ}.{consumer or '>'}"
        letters: list[DeadLetter] = []
        sequence = 1
        while True:
            try:
                msg = await self.jetstream.get_msg(stream, seq=sequence, subject=subject, next=True)
            except NotFoundError:
                return letters
            letters.append(DeadLetter.from_json(msg.data or b"", ref=str(msg.seq)))
            sequence = (msg.seq or sequence) + 1

    async def replay(self, letter: DeadLetter) -> None:
        headers = {REPLAYED_FOR_HEADER: letter.consumer}
        if letter.event_type:
            headers[EVENT_TYPE_HEADER] = letter.event_type
        # A fresh id: the original's id may still be inside the duplicate window.
        await self.jetstream.publish(
            letter.origin, letter.body, headers={**headers, "Nats-Msg-Id": f"replay:{self.city}:dlq:{letter.ref}"}
        )
        with contextlib.suppress(NotFoundError):
            await self.jetstream.delete_msg(stream_name(self.city, DLQ), int(letter.ref))

    async def delete_streams(self) -> None:
        """Removes every stream of this city: for tests and for wiping a local city."""
        prefix = f"{self.city}_".upper()
        for info in await self.jetstream.streams_info():
            if info.config.name and info.config.name.startswith(prefix):
                with contextlib.suppress(NotFoundError):
                    await self.jetstream.delete_stream(info.config.name)
        self._streams.clear()

    async def _on_error(self, error: Exception) -> None:
        log.warning("nats_error", error=str(error) or type(error).__name__)

    async def _on_disconnect(self) -> None:
        if not self._closing:
            log.warning("nats_disconnected")

    async def _on_reconnect(self) -> None:
        log.info("nats_reconnected")
