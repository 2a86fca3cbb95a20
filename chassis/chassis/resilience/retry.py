"""Retries that cannot turn a struggling dependency into a dead one.

A retry happens only when all of these hold: the operation is idempotent, the error says
trying again may help, attempts are left, the backoff still ends before the deadline, and the
dependency's retry budget has room. Backoff is exponential with full jitter (AWS
Architecture Blog, "Exponential Backoff and Jitter"): a uniform draw in
`[0, min(cap, base * 2**n)]`, so clients that failed together do not retry together.

The budget (as in Finagle and Envoy) bounds retries to a share of recent requests: with the
default 10%, a dependency that fails every call sees at most ~1.1x its normal load, never the
3x that "retry three times" would send.
"""

from __future__ import annotations

import asyncio
import random as random_module
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chassis.resilience import metrics
from chassis.resilience._rolling import RollingCount
from chassis.resilience.deadline import current_deadline

T = TypeVar("T")


def backoff(retry_number: int, *, base: float, cap: float, random: Callable[[], float] = random_module.random) -> float:
    """Seconds to wait before retry `retry_number` (0 for the first retry): full jitter."""
    # A float power of two this large already exceeds any cap; the limit only avoids OverflowError.
    ceiling = min(cap, base * 2.0 ** min(retry_number, 1000))
    return random() * ceiling


class RetryBudget:
    """Allows retries while they stay within `ratio` of the requests of the last `window_seconds`.

    `min_per_second` retries per second are allowed on top, so a dependency that is barely used
    can still be retried at all.
    """

    def __init__(
        self,
        *,
        ratio: float = 0.1,
        min_per_second: float = 1.0,
        window_seconds: float = 10.0,
        buckets: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ):
        if ratio < 0 or min_per_second < 0:
            raise ValueError("a retry budget cannot be negative")
        self._ratio = ratio
        self._reserve = min_per_second * window_seconds
        self._requests = RollingCount(window_seconds, buckets, clock)
        self._retries = RollingCount(window_seconds, buckets, clock)

    def record_request(self) -> None:
        """Counts a first attempt; each one earns `ratio` of a retry."""
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
        *,
        budget: RetryBudget,
        is_retryable: Callable[[BaseException], bool],
        max_attempts: int = 3,
        backoff_base_seconds: float = 0.025,
        backoff_cap_seconds: float = 0.25,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Callable[[], float] = random_module.random,
    ):
        if max_attempts < 1:
            raise ValueError("max_attempts counts the first attempt, so it is at least 1")
        self._dependency = dependency
        self._budget = budget
        self._is_retryable = is_retryable
        self._max_attempts = max_attempts
        self._base = backoff_base_seconds
        self._cap = backoff_cap_seconds
        self._sleep = sleep
        self._random = random

    async def run(self, attempt: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        """Runs `attempt`, again after a backoff when allowed; otherwise raises its last error."""
        self._budget.record_request()
        retry_number = 0
        while True:
            try:
                return await attempt()
            except Exception as error:
                if not idempotent or not self._is_retryable(error) or retry_number + 1 >= self._max_attempts:
                    raise
                delay = backoff(retry_number, base=self._base, cap=self._cap, random=self._random)
                deadline = current_deadline()
                if deadline is not None and delay >= deadline.remaining():
                    raise
                if not self._budget.try_withdraw():
                    metrics.rejections.labels(self._dependency, "retry_budget_exhausted").inc()
                    raise
            metrics.retries.labels(self._dependency).inc()
            await self._sleep(delay)
            retry_number += 1
