"""The transactional outbox and its relay.

A handler writes its state and its events in one Postgres transaction (`Outbox.add`); the relay
publishes committed rows to the bus and marks them published only once the broker has acked.
So an event exists if and only if its state change committed, and it reaches the broker at least
once; the broker's deduplication on `msg_id` (the event id) and the consumers' inbox absorb the
repeats a crash between publish and mark can cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import asyncpg

from chassis import db
from chassis.logs import get_logger
from chassis.messaging import _metrics
from chassis.messaging.bus import EVENT_TYPE_HEADER, Bus, Retention
from chassis.messaging.envelope import Envelope, MalformedEvent
from chassis.request_id import EVENT_HEADER, current_request_id

MIGRATIONS = Path(__file__).parent / "migrations"
"""Give this to the migration runner under its own namespace, e.g. `{"messaging": MIGRATIONS}`."""

NOTIFY_CHANNEL = "agora_outbox"
# Room kept for the headers the relay adds (message id, type, trace, request id) beyond those stored.
_LARGEST_EVENT_BYTES = Retention().max_event_bytes - 1024

log = get_logger(__name__)


async def add_to_outbox(conn: asyncpg.Connection, envelope: Envelope) -> None:
    """Stores `envelope` in the caller's open transaction; it is published after the commit,
    with the trace context and the id of the request being served as headers."""
    if not conn.is_in_transaction():
        raise RuntimeError("add_to_outbox needs the transaction that writes the state change")
    headers = dict(envelope.trace)
    if (request_id := current_request_id.get()) is not None:
        headers[EVENT_HEADER] = request_id
    body, encoded_headers = envelope.to_json(), json.dumps(headers)
    if len(body) + len(encoded_headers.encode()) > _LARGEST_EVENT_BYTES:
        # Refused here, with the state change, rather than by the broker forever after the
        # commit, where the relay could neither publish the row nor pass it by.
        raise MalformedEvent(f"{envelope.type} is {len(body)} bytes; a stream takes {_LARGEST_EVENT_BYTES}")
    await conn.execute(
        "INSERT INTO outbox (event_id, event_type, envelope, headers) VALUES ($1, $2, $3, $4)",
        envelope.id,
        envelope.type,
        body.decode(),
        encoded_headers,
    )


class Outbox:
    """Builds `producer`'s events (validated, carrying the current trace) and stores them."""

    def __init__(self, producer: str):
        self.producer = producer

    async def add(
        self, conn: asyncpg.Connection, name: str, data: dict[str, Any], *, subject: str | None = None, version: int = 1
    ) -> Envelope:
        envelope = Envelope.new(self.producer, name, data, subject=subject, version=version)
        await add_to_outbox(conn, envelope)
        return envelope


def _lock_key(service: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(f"agora-outbox-relay:{service}".encode(), digest_size=8).digest(), "big", signed=True
    )


class OutboxRelay:
    """Publishes a service's outbox. Start one per instance: an advisory lock lets one of them
    relay while the others stand by, so events leave in commit order from a single publisher.

    Woken by NOTIFY the moment a transaction commits, and by a poll every `poll_interval`
    seconds in case a notification is missed (the listening connection was down)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        *,
        service: str,
        batch_size: int = 256,
        poll_interval: float = 1.0,
        standby_interval: float = 1.0,
        max_backoff: float = 5.0,
        mark_delay: float = 0.05,
        keep_published_seconds: float = 24 * 3600,
        stalled_after_seconds: float = 30.0,
    ):
        self._pool = pool
        self._bus = bus
        self._service = service
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._standby_interval = standby_interval
        self._max_backoff = max_backoff
        self._mark_delay = mark_delay
        self._keep_published = keep_published_seconds
        self._stalled_after = stalled_after_seconds
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.is_leader = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._service}")

    async def stop(self) -> None:
        """Lets the batch being published finish and be marked, then releases the lock."""
        self._stopped.set()
        self._wake.set()
        if self._task is not None:
            await self._task

    async def __aenter__(self) -> OutboxRelay:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                async with self._pool.acquire() as conn:
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", _lock_key(self._service)):
                        try:
                            await self._end_session_if_stalled(conn)
                            await self._lead(conn)
                        finally:
                            self.is_leader = False
                            await db.unlock(conn, _lock_key(self._service))
                            await self._end_session_if_stalled(conn, when=False)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("outbox_relay_database_error", error=str(error) or type(error).__name__)
            except Exception:  # the relay must outlive any surprise: events stop flowing without it
                log.exception("outbox_relay_failed")
            if not self._stopped.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._standby_interval)
                self._wake.clear()

    async def _end_session_if_stalled(self, conn: asyncpg.Connection, *, when: bool = True) -> None:
        """A leader runs a statement at least every few seconds. One that stops running (its
        process frozen, its machine paused) keeps its connection open, and the lock with it, so
        no standby would ever take over: Postgres ends such a session once it has idled for
        `stalled_after` seconds. Given back to the pool, the connection must not carry that."""
        setting = f"SET idle_session_timeout = {int(self._stalled_after * 1000)}" if when else "RESET idle_session_timeout"
        try:
            await conn.execute(setting)
        except asyncpg.UndefinedObjectError:  # before PostgreSQL 14: a frozen leader needs an operator
            pass
        except BaseException:
            conn.terminate()
            raise

    async def _lead(self, conn: asyncpg.Connection) -> None:
        self.is_leader = True
        log.info("outbox_relay_leading", service=self._service)
        await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
        try:
            failures = 0
            next_housekeeping = 0.0
            unmarked: list[int] = []
            while not self._stopped.is_set():
                self._wake.clear()
                published, failed = await self._publish_batch(conn, unmarked)
                now = time.monotonic()
                if now >= next_housekeeping:
                    await self._housekeep(conn, unmarked)
                    next_housekeeping = now + self._poll_interval
                if failed:
                    failures += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopped.wait(), min(self._max_backoff, 0.05 * 2**failures))
                    continue
                failures = 0
                if published == self._batch_size:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._mark_delay if unmarked else self._poll_interval)
            if unmarked:
                await conn.execute("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", unmarked)
        finally:
            with contextlib.suppress(Exception):
                await conn.remove_listener(NOTIFY_CHANNEL, self._on_notify)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _publish_batch(self, conn: asyncpg.Connection, unmarked: list[int]) -> tuple[int, int]:
        """Marks the rows of the last batch published and publishes the oldest unpublished ones;
        returns (published, failed) and leaves the ids just published in `unmarked`.

        One statement does both: marking a batch costs no round trip of its own while events keep
        coming, and at most `mark_delay` seconds when they stop. Until then a crash republishes
        them, which the broker's deduplication and the consumers' inbox absorb, as for a crash
        between publish and mark. Always reads from the lowest unpublished id, never "after the
        last one sent": a row with a lower id whose transaction committed late is picked up on
        the next pass.
        """
        rows = await conn.fetch(
            "WITH marked AS (UPDATE outbox SET published_at = now() WHERE id = ANY($2::bigint[]))"
            " SELECT id, event_id, event_type, envelope, headers FROM outbox"
            " WHERE published_at IS NULL AND NOT id = ANY($2::bigint[]) ORDER BY id LIMIT $1",
            self._batch_size,
            unmarked,
        )
        unmarked.clear()
        if not rows:
            return 0, 0
        # Sent together over one connection, so the broker receives them in id order.
        results = await asyncio.gather(*(self._publish(row) for row in rows), return_exceptions=True)
        unmarked.extend(row["id"] for row, result in zip(rows, results, strict=True) if result is None)
        errors = [result for result in results if isinstance(result, BaseException)]
        if unmarked:
            _metrics.outbox_published.labels(self._service).inc(len(unmarked))
        if errors:
            _metrics.outbox_publish_failures.labels(self._service).inc(len(errors))
            log.warning("outbox_publish_failed", failed=len(errors), error=str(errors[0]) or type(errors[0]).__name__)
        return len(unmarked), len(errors)

    async def _publish(self, row: asyncpg.Record) -> None:
        headers = {**json.loads(row["headers"]), EVENT_TYPE_HEADER: row["event_type"]}
        await self._bus.publish(
            row["envelope"].encode(), row["event_type"], msg_id=str(row["event_id"]), headers=headers
        )

    async def _housekeep(self, conn: asyncpg.Connection, unmarked: list[int]) -> None:
        count, oldest = await conn.fetchrow(
            "SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8"
            " FROM outbox WHERE published_at IS NULL AND NOT id = ANY($1::bigint[])",
            unmarked,
        )
        _metrics.outbox_unpublished.labels(self._service).set(count)
        _metrics.outbox_oldest_age.labels(self._service).set(oldest)
        await conn.execute(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)", self._keep_published
        )
