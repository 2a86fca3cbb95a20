"""A circuit breaker over the failure rate of the last N calls, with limited half-open probes.

CLOSED: calls pass and their outcomes fill a count-based window of the last `window_size`
calls. Once the window holds at least `minimum_calls` and the share of failures in it reaches
`failure_rate_threshold`, the circuit opens. (Counting calls rather than seconds keeps the
decision meaningful at any traffic level and makes it exact to test.)

OPEN: calls are refused at once with `BreakerOpen` for `open_seconds`; the next call after that
finds the circuit HALF_OPEN.

HALF_OPEN: at most `half_open_probes` calls are in flight at a time; the rest are refused. When
`half_open_probes` probes have succeeded the circuit closes with an empty window; the first
failed probe reopens it for another `open_seconds`.

Which errors are failures is the caller's predicate: a dependency that answers "not found" is
healthy. A call that is cancelled, or refused by our own checks (`ResilienceError`), tells
nothing about the dependency and is not counted. Outcomes of calls admitted before the last
state change are ignored: they describe a dependency we no longer judge by.

Every decision and its bookkeeping happen without an `await` in between, on one event loop, so
no lock is needed however many tasks share the breaker.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chassis.logs import get_logger
from chassis.resilience import metrics
from chassis.resilience.errors import BreakerOpen, ResilienceError
from chassis.resilience.policy import BreakerPolicy, ErrorPredicate

T = TypeVar("T")
log = get_logger(__name__)


class BreakerState(enum.IntEnum):
    """Values are the `agora_breaker_state` gauge reading."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        dependency: str,
        policy: BreakerPolicy = BreakerPolicy(),
        *,
        is_failure: ErrorPredicate,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.dependency = dependency
        self.policy = policy
        self._is_failure = is_failure
        self._clock = clock
        self._window: deque[bool] = deque(maxlen=policy.window_size)  # True for a failed call
        self._state = BreakerState.CLOSED
        self._generation = 0  # bumped on every state change
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probes_succeeded = 0
        metrics.breaker_state.labels(dependency).set(BreakerState.CLOSED)

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.policy.open_seconds:
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
        except BaseException:  # cancelled: says nothing about the dependency
            self._forget(generation)
            raise
        self._record(generation, failed=False)
        return result

    def _admit(self) -> int:
        state = self.state
        if state is BreakerState.HALF_OPEN and self._probes_in_flight < self.policy.half_open_probes:
            self._probes_in_flight += 1
        elif state is not BreakerState.CLOSED:
            metrics.breaker_rejections.labels(self.dependency).inc()
            raise BreakerOpen(f"the circuit to {self.dependency} is {state.name.lower().replace('_', '-')}")
        return self._generation

    def _record(self, generation: int, *, failed: bool) -> None:
        if generation != self._generation:
            return
        if self._state is BreakerState.HALF_OPEN:
            self._probes_in_flight -= 1
            if failed:
                self._move_to(BreakerState.OPEN)
            else:
                self._probes_succeeded += 1
                if self._probes_succeeded >= self.policy.half_open_probes:
                    self._move_to(BreakerState.CLOSED)
            return
        self._window.append(failed)
        if failed and len(self._window) >= self.policy.minimum_calls:
            if sum(self._window) >= self.policy.failure_rate_threshold * len(self._window):
                self._move_to(BreakerState.OPEN)

    def _forget(self, generation: int) -> None:
        if generation == self._generation and self._state is BreakerState.HALF_OPEN:
            self._probes_in_flight -= 1

    def _move_to(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        self._generation += 1
        self._window.clear()
        self._probes_in_flight = self._probes_succeeded = 0
        if new is BreakerState.OPEN:
            self._opened_at = self._clock()
        metrics.breaker_state.labels(self.dependency).set(new)
        log.warning("breaker_state_changed", dependency=self.dependency, old=old.name, new=new.name)
