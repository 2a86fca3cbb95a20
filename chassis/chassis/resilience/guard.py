"""`Guard`: every resilience mechanism for one dependency, composed in the one right order.

    deadline -> bulkhead -> retry loop (budgeted) -> breaker -> attempt(timeout)

Expired work is refused before it costs anything; the bulkhead bounds how many of our tasks
the dependency holds, retries and their backoff included; each attempt passes the breaker on
its own, so a circuit that opens mid-call stops the retries too; and each attempt gets the
policy's timeout, shortened to what remains of the deadline.
"""

from __future__ import annotations

import asyncio
import random as random_module
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chassis.resilience import metrics
from chassis.resilience.breaker import CircuitBreaker
from chassis.resilience.bulkhead import Bulkhead
from chassis.resilience.deadline import current_deadline, remaining, timeout_for_next_call
from chassis.resilience.errors import DeadlineExceeded
from chassis.resilience.policy import Policy
from chassis.resilience.retry import Retry, RetryBudget

T = TypeVar("T")


class Guard:
    """Calls one dependency under its policy. Share one guard per dependency per process.

    `clock`, `sleep` and `random` are there for tests, which drive time by hand.
    """

    def __init__(
        self,
        dependency: str,
        policy: Policy,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Callable[[], float] = random_module.random,
    ):
        self.dependency = dependency
        self.policy = policy
        self.bulkhead = Bulkhead(dependency, policy.bulkhead)
        self.breaker = CircuitBreaker(dependency, policy.breaker, is_failure=policy.is_failure, clock=clock)
        self.budget = RetryBudget(policy.retry, clock=clock)
        self._retry = Retry(
            dependency, policy.retry, budget=self.budget, is_retryable=policy.is_retryable,
            attempt_timeout=policy.timeout_seconds, sleep=sleep, random=random,
        )

    async def call(self, attempt: Callable[[float], Awaitable[T]], *, idempotent: bool) -> T:
        """Calls `attempt(timeout)` under the policy; `attempt` must give up after `timeout` seconds.

        Raises `DeadlineExceeded`, `BulkheadFull` or `BreakerOpen` when the guard refuses by
        itself, otherwise the last error of `attempt`. Only `idempotent` calls are retried.
        """
        try:
            deadline = current_deadline()
            if deadline is not None and deadline.expired:
                raise DeadlineExceeded(f"the deadline passed before calling {self.dependency}")
            async with self.bulkhead.slot(remaining()):
                return await self._retry.run(lambda is_retry: self._once(attempt, is_retry), idempotent=idempotent)
        except DeadlineExceeded:
            metrics.deadline_rejections.labels(self.dependency).inc()
            raise

    async def _once(self, attempt: Callable[[float], Awaitable[T]], is_retry: bool) -> T:
        timeout = timeout_for_next_call(self.policy.timeout_seconds)

        async def send() -> T:
            # Counted here, once the breaker has let it through: a retry it refuses is not sent.
            metrics.attempts.labels(self.dependency).inc()
            if is_retry:
                metrics.retries.labels(self.dependency).inc()
            return await attempt(timeout)

        return await self.breaker.call(send)
