"""Retries that cannot turn a struggling dependency into a dead one.

A failed attempt is retried only when all of these hold: the operation is idempotent, the
error says trying again may help, attempts are left, the backoff ends before the deadline, and
the dependency's retry budget has room. Backoff is exponential with full jitter (AWS
Architecture Blog, "Exponential Backoff and Jitter"): a uniform draw in
`[0, min(cap, base * 2**n)]`, so clients that failed together do not come back together.

The budget (as in Finagle and Envoy) bounds retries to a share of recent requests: with 10%,
a dependency that fails every call sees at most ~1.1x its normal load, never the 3x that
"retry three times" would send.
"""

from __future__ import annotations

import asyncio
import math
import random as random_module
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chassis.resilience import metrics
from chassis.resilience.deadline import remaining
from chassis.resilience.policy import ErrorPredicate, RetryPolicy

T = TypeVar("T")

BUDGET_BUCKETS = 10  # the budget's window slides in tenths of its length


def backoff(retry_number: int, *, base: float, cap: float, random: Callable[[], float] = random_module.random) -> float:
    """Seconds to wait before retry `retry_number` (0 for the first retry), with full jitter."""
    # Any power of two past 2**1000 already exceeds every cap; the limit only avoids OverflowError.
    return random() * min(cap, base * 2.0 ** min(retry_number, 1000))


class _RollingCount:
    """Events of the last `seconds`, counted in `buckets` slices that drop off whole."""

    def __init__(self, seconds: float, buckets: int, clock: Callable[[], float]):
        self._width = seconds / buckets
        self._buckets = buckets
        self._clock = clock
        self._slices: deque[list[int]] = deque()  # [slice number, count], oldest first

    def add(self) -> None:
        # Slices drop off here too: a healthy dependency's requests are counted every second
        # but totalled only when a call fails, and the deque must not grow until then.
        now = self._drop_expired()
        if self._slices and self._slices[-1][0] == now:
            self._slices[-1][1] += 1
        else:
            self._slices.append([now, 1])

    def total(self) -> int:
        self._drop_expired()
        return sum(count for _, count in self._slices)

    def _drop_expired(self) -> int:
        """Drops the slices older than the window; returns the current slice's number."""
        now = math.floor(self._clock() / self._width)
        while self._slices and self._slices[0][0] <= now - self._buckets:
            self._slices.popleft()
        return now


class RetryBudget:
    """Retries allowed: `budget_ratio` of the requests of the last `budget_window_seconds`, plus
    `budget_min_per_second` for every second of that window."""

    def __init__(self, policy: RetryPolicy = RetryPolicy(), *, clock: Callable[[], float] = time.monotonic):
        self._ratio = policy.budget_ratio
        self._reserve = policy.budget_min_per_second * policy.budget_window_seconds
        self._requests = _RollingCount(policy.budget_window_seconds, BUDGET_BUCKETS, clock)
        self._retries = _RollingCount(policy.budget_window_seconds, BUDGET_BUCKETS, clock)

    def record_request(self) -> None:
        """Counts a call (not a retry): each one earns `budget_ratio` of a retry."""
        self._requests.add()

    def try_withdraw(self) -> bool:
        """Takes one retry from the budget, or says no."""
        if self._retries.total() + 1 > self._ratio * self._requests.total() + self._reserve:
            return False
        self._retries.add()
        return True


class Retry:
    def __init__(
        self,
        dependency: str,
        policy: RetryPolicy,
        *,
        budget: RetryBudget,
        is_retryable: ErrorPredicate,
        attempt_timeout: float,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Callable[[], float] = random_module.random,
    ):
        self.dependency = dependency
        self.policy = policy
        self._budget = budget
        self._is_retryable = is_retryable
        self._attempt_timeout = attempt_timeout
        self._sleep = sleep
        self._random = random

    async def run(self, attempt: Callable[[bool], Awaitable[T]], *, idempotent: bool) -> T:
        """Runs `attempt(is_retry)`, again after a backoff while allowed; otherwise raises its
        last error."""
        self._budget.record_request()
        retry_number = 0
        while True:
            try:
                return await attempt(retry_number > 0)
            except Exception as error:
                delay = self._delay_before_retry(retry_number, error, idempotent=idempotent)
                if delay is None:
                    raise
            await self._sleep(delay)
            retry_number += 1

    def _delay_before_retry(self, retry_number: int, error: Exception, *, idempotent: bool) -> float | None:
        if not idempotent or retry_number + 1 >= self.policy.max_attempts or not self._is_retryable(error):
            return None
        delay = backoff(
            retry_number,
            base=self.policy.backoff_base_seconds,
            cap=self.policy.backoff_cap_seconds,
            random=self._random,
        )
        # A retry is made with a whole attempt's time, or not at all: one cut short by the
        # deadline rarely answers where a whole one failed, and it would take the time this
        # caller needs to answer its own caller in time. Timing out there instead, it would be
        # blamed, and counted against its own circuit, for the dependency behind it.
        left = remaining()
        if left is not None and delay + self._attempt_timeout > left:
            return None
        if not self._budget.try_withdraw():
            metrics.retry_budget_exhausted.labels(self.dependency).inc()
            return None
        return delay
