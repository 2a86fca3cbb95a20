"""Replay: wipe the projections and rebuild them from the start of the streams (`agora replay analytics`).

1. On a connection of its own, the replay creates empty temporary copies of the projections. On
   that connection they shadow the live tables, so the live recorders themselves fill them.
2. It reads each producer stream analytics follows, from the first message kept, message by
   message with the stream's get API, up to the stream's end as of then, applying every event it
   has a recorder for. Meanwhile the live consumer keeps the live projections, and the report, current.
3. In one transaction it takes the projections' lock (waiting for the recorders in flight while
   holding off new ones), reads what was published since step 2, and replaces the live
   projections with the fresh ones.

Nothing is missed: an event the live consumer applied before step 3 was in its stream when step 3
read it. Nothing counts twice: an event both the replay and, later, the live consumer apply is
an idempotent fact the second time. Streams are merged producer by producer rather than in time
order, which is fine because the facts do not depend on order.

History goes back as far as the streams keep it: 30 days or 1 GiB per producer stream
(`chassis.messaging.Retention`). RabbitMQ keeps no history, so there is nothing to replay there.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import asyncpg
from nats.js.errors import NotFoundError

from analytics import repository
from analytics.handlers import Recorder, Unreportable
from chassis.logs import get_logger
from chassis.messaging import Envelope, MalformedEvent, NatsBus
from chassis.messaging.bus import parse_event_type

log = get_logger(__name__)


class ReplayRunning(Exception):
    """Another replay holds the projections; one at a time."""


class History(Protocol):
    def read(self, producer: str, after: int) -> AsyncIterator[tuple[int, bytes]]:
        """The producer's events with a stream position above `after`, oldest first, up to the
        end of the stream as of the call: (position, body) pairs."""
        ...


class JetStreamHistory:
    """A NATS producer stream read message by message with the stream's own get API: no consumer
    on the server, so nothing to create (the embedded NATS lets a service create none) and
    nothing left behind."""

    def __init__(self, bus: NatsBus):
        self._bus = bus

    async def read(self, producer: str, after: int) -> AsyncIterator[tuple[int, bytes]]:
        js = self._bus.jetstream
        stream = await self._bus.ensure_stream(producer)
        end = (await js.stream_info(stream)).state.last_seq
        subjects = f"{self._bus.city}.{producer}.>"
        position = after
        while position < end:
            try:
                msg = await js.get_msg(stream, seq=position + 1, next=True, subject=subjects)
            except NotFoundError:  # nothing kept after `position`
                return
            position = msg.seq or end
            if position > end:
                return
            yield position, msg.data or b""


async def replay(dsn: str, history: History, recorders: Mapping[str, Recorder]) -> int:
    """Rebuilds the projections from `history` with `recorders` (event type → recorder) and
    swaps them in; answers how many events were applied. Raises ReplayRunning if one already is."""
    producers = sorted({parse_event_type(event_type)[0] for event_type in recorders})
    conn = await asyncpg.connect(dsn)
    try:
        if not await repository.try_lock_replay(conn):
            raise ReplayRunning("a replay of analytics is already running")
        await repository.create_fresh_projections(conn)
        positions, applied = {}, 0
        for producer in producers:
            positions[producer], count = await _apply(conn, history, producer, 0, recorders)
            applied += count
        async with conn.transaction():
            await repository.lock_projections(conn)
            for producer in producers:
                _, count = await _apply(conn, history, producer, positions[producer], recorders)
                applied += count
            await repository.replace_projections(conn)
    finally:
        await conn.close()
    log.info("analytics_replayed", events_applied=applied)
    return applied


async def _apply(
    conn: asyncpg.Connection, history: History, producer: str, after: int, recorders: Mapping[str, Recorder]
) -> tuple[int, int]:
    """Applies the producer's events after `after`; answers the last position read and how many applied."""
    position, applied = after, 0
    async with contextlib.aclosing(history.read(producer, after)) as events:
        async for position, body in events:
            try:
                event = Envelope.parse(body)
                recorder = recorders.get(event.type)
                if recorder is None:
                    continue
                async with conn.transaction():  # a savepoint inside the final transaction
                    await recorder(event, conn)
            except (MalformedEvent, Unreportable) as error:
                # The live consumer dead-letters these: leaving them out reaches the same figures.
                log.warning("replay_skipped_event", producer=producer, position=position, error=str(error))
                continue
            applied += 1
    return position, applied
