"""A circuit breaker over a failure-rate window, with a limited number of half-open probes.

CLOSED: calls pass; their outcomes fill a time-based window (the last `window_seconds`, in
`buckets` slices). Once the window holds at least `minimum_calls` and the share of failures
reaches `failure_rate_threshold`, the circuit opens. A time-based window, rather than the last
N calls, lets old failures age out on a quiet dependency instead of tripping it hours later.

OPEN: calls are rejected at once with `BreakerOpen`, for `open_seconds`.

HALF_OPEN: up to `half_open_probes` calls are let through; the rest are rejected. When every
probe has succeeded the circuit closes with an empty window; the first failed probe reopens it.

Which errors are failures is the caller's choice (`is_failure`): a dependency that answers
"not found" is healthy. A call that is cancelled, or refused by our own resilience checks
(`ResilienceError`), tells nothing about the dependency and is not counted. Outcomes of
calls admitted before the last state change are ignored: they describe a dependency we no
longer judge by.

All of this runs on one event loop without awaiting between decision and bookkeeping, so it
needs no lock.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chassis.resilience._rolling import RollingCount
from chassis.resilience.errors import BreakerOpen, ResilienceError

T = TypeVar("T")


class BreakerState(enum.IntEnum):
    """Values double as the `agora_breaker_state` gauge reading."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


StateListener = Callable[[str, BreakerState, BreakerState], None]


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        is_failure: Callable[[BaseException], bool],
        failure_rate_threshold: float = 0.5,
        minimum_calls: int = 20,
        window_seconds: float = 10.0,
        buckets: int = 10,
        open_seconds: float = 5.0,
        half_open_probes: int = 3,
        on_state_change: StateListener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not 0.0 < failure_rate_threshold <= 1.0:
            raise ValueError("failure_rate_threshold is a share of calls, in (0, 1]")
        if minimum_calls < 1 or half_open_probes < 1:
            raise ValueError("minimum_calls and half_open_probes must be at least 1")
        self.name = name
        self._is_failure = is_failure
        self._threshold = failure_rate_threshold
        self._minimum_calls = minimum_calls
        self._open_seconds = open_seconds
        self._probes = half_open_probes
        self._on_state_change = on_state_change
        self._clock = clock
        self._calls = RollingCount(window_seconds, buckets, clock)
        self._failures = RollingCount(window_seconds, buckets, clock)
        self._state = BreakerState.CLOSED
        self._generation = 0  # bumped on every state change
        self._opened_at = 0.0
        self._probes_admitted = 0
        self._probes_succeeded = 0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._open_seconds:
            self._move_to(BreakerState.HALF_OPEN)
        return self._state

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Runs `fn` if the circuit lets it through; raises `BreakerOpen` at once otherwise."""
        generation = self._admit()
        try:
            result = await fn()
        except ResilienceError:
            self._forget(generation)
            raise
        except Exception as error:
            self._record(generation, failed=self._is_failure(error))
            raise
        except BaseException:
            self._forget(generation)
            raise
        self._record(generation, failed=False)
        return result

    def _admit(self) -> int:
        state = self.state
        if state is BreakerState.OPEN:
            raise BreakerOpen(f"circuit to {self.name} is open")
        if state is BreakerState.HALF_OPEN:
            if self._probes_admitted >= self._probes:
                raise BreakerOpen(f"circuit to {self.name} is half-open and its probes are taken")
            self._probes_admitted += 1
        return self._generation

    def _record(self, generation: int, *, failed: bool) -> None:
        if generation != self._generation:
            return
        if self._state is BreakerState.HALF_OPEN:
            if failed:
                self._move_to(BreakerState.OPEN)
            else:
                self._probes_succeeded += 1
                if self._probes_succeeded >= self._probes:
                    self._move_to(BreakerState.CLOSED)
            return
        self._calls.add()
        if failed:
            self._failures.add()
            calls = self._calls.total()
            if calls >= self._minimum_calls and self._failures.total() >= self._threshold * calls:
                self._move_to(BreakerState.OPEN)

    def _forget(self, generation: int) -> None:
        if generation == self._generation and self._state is BreakerState.HALF_OPEN:
            self._probes_admitted -= 1

    def _move_to(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        self._generation += 1
        self._calls.clear()
        self._failures.clear()
        self._probes_admitted = self._probes_succeeded = 0
        if new is BreakerState.OPEN:
            self._opened_at = self._clock()
        if self._on_state_change is not None:
            self._on_state_change(self.name, old, new)
