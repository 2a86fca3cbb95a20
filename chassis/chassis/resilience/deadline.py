"""Deadlines that travel with the work, hop to hop.

The server side opens a `deadline_scope` with what the incoming call has left; every outgoing
call then takes `min(its own timeout, what remains)`, so a request never outlives its caller's
patience, however many hops it crosses. Python gRPC does not do this by itself.

The deadline lives in a contextvar, so tasks started inside a scope inherit it and concurrent
requests never see each other's.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from chassis.resilience.errors import DeadlineExceeded

Clock = Callable[[], float]


@dataclass(frozen=True)
class Deadline:
    """An absolute point in `clock` time (monotonic seconds) after which nobody waits."""

    at: float
    clock: Clock = time.monotonic

    @classmethod
    def after(cls, seconds: float, clock: Clock = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - self.clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("deadline", default=None)


def current_deadline() -> Deadline | None:
    return _current.get()


def remaining() -> float | None:
    """Seconds left of the current deadline (never negative), or `None` when there is none."""
    deadline = _current.get()
    return None if deadline is None else deadline.remaining()


@contextmanager
def deadline_scope(seconds: float | None, *, clock: Clock = time.monotonic) -> Iterator[Deadline | None]:
    """Work inside has at most `seconds`, and never more than an enclosing scope allows.

    `None` (an incoming call without a deadline) adds no limit: an enclosing deadline stays.
    """
    outer = _current.get()
    if seconds is None:
        yield outer
        return
    deadline = outer if outer is not None and outer.remaining() <= seconds else Deadline.after(seconds, clock)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def timeout_for_next_call(default: float) -> float:
    """The timeout to give the next hop: `default`, shortened to what remains of the deadline.

    Raises `DeadlineExceeded` at once when nothing remains, rather than making a call that
    cannot finish in time.
    """
    left = remaining()
    if left is None:
        return default
    if left <= 0.0:
        raise DeadlineExceeded("the deadline passed before the next call could start")
    return min(default, left)
