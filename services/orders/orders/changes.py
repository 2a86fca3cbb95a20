"""Wakes the streams following an order when its status changes, whichever instance of orders
changed it: a trigger notifies `order_status_changed` with the order's id as the change commits
(migration 003), and each instance listens on one connection of its pool.

A notification is a hint, never the record: a follower re-reads the order when woken. While the
listening connection is down, notifications are lost, so every follower is woken once it is
listening again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import asyncpg

from chassis.logs import get_logger

CHANNEL = "order_status_changed"

log = get_logger(__name__)


class OrderChanges:
    """A worker: `following(order_id)` gives an event set at each status change of the order."""

    def __init__(self, pool: asyncpg.Pool, *, check_seconds: float = 5.0, reconnect_seconds: float = 1.0):
        self._pool = pool
        self._check = check_seconds
        self._reconnect = reconnect_seconds
        self._followers: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self.ending = False
        """Set when this instance stops: its followers end, and their callers follow elsewhere."""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="order-changes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def end_follows(self) -> None:
        """Wakes every follower for the last time, as this instance stops."""
        self.ending = True
        self._wake_all()

    @contextlib.contextmanager
    def following(self, order_id: str) -> Iterator[asyncio.Event]:
        """Set from now on whenever the order's status may have changed; the follower clears it
        before it reads the order, so no change between its read and its wait goes unseen."""
        changed = asyncio.Event()
        self._followers.setdefault(order_id, set()).add(changed)
        try:
            yield changed
        finally:
            followers = self._followers[order_id]
            followers.discard(changed)
            if not followers:
                del self._followers[order_id]

    async def _listen(self) -> None:
        while True:
            try:
                async with self._pool.acquire() as conn:
                    await self._follow_notifications(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("order_changes_connection_lost", error=str(error) or type(error).__name__)
            except Exception:  # followers would wait for nothing without it
                log.exception("order_changes_failed")
            await asyncio.sleep(self._reconnect)

    async def _follow_notifications(self, conn: asyncpg.Connection) -> None:
        """Returns when the connection is lost; raises when it is found broken."""
        lost = asyncio.Event()

        def on_termination(_conn: object) -> None:
            lost.set()

        conn.add_termination_listener(on_termination)
        await conn.add_listener(CHANNEL, self._on_notify)
        try:
            self._wake_all()  # for what changed while nobody listened
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._check)
                if not lost.is_set():
                    # A connection cut without a word (no FIN) is found only by using it.
                    await conn.execute("SELECT 1")
        finally:
            if not lost.is_set():  # a closed connection has nobody left to tell
                conn.remove_termination_listener(on_termination)
                await conn.remove_listener(CHANNEL, self._on_notify)
        log.warning("order_changes_connection_lost", error="closed")

    def _on_notify(self, _conn: object, _pid: int, _channel: str, order_id: str) -> None:
        for changed in self._followers.get(order_id, ()):
            changed.set()

    def _wake_all(self) -> None:
        for followers in self._followers.values():
            for changed in followers:
                changed.set()

