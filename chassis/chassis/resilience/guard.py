"""`Guard`: every resilience mechanism for one dependency, composed in the one right order.

    deadline -> bulkhead -> retry loop (budgeted) -> breaker -> attempt

The deadline is checked first so expired work costs nothing; the bulkhead bounds how many of
our tasks the dependency can hold, retries included; each attempt passes the breaker on its
own, so a circuit that opens mid-call stops the retries too; and each attempt gets the
policy's timeout, shortened to what remains of the deadline.
"""

from __future__ import annotations

import asyncio
import random as random_module
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chassis.logs import get_logger
from chassis.resilience import grpc_errors, metrics
from chassis.resilience.breaker import BreakerState, CircuitBreaker
from chassis.resilience.bulkhead import Bulkhead
from chassis.resilience.deadline import current_deadline, timeout_for_next_call
from chassis.resilience.errors import BreakerOpen, BulkheadFull, DeadlineExceeded
from chassis.resilience.policy import Policy
from chassis.resilience.retry import Retry, RetryBudget

T = TypeVar("T")
log = get_logger(__name__)


def _report_state_change(dependency: str, old: BreakerState, new: BreakerState) -> None:
    metrics.breaker_state.labels(dependency).set(new.value)
    log.warning("breaker_state_changed", dependency=dependency, old=old.name, new=new.name)


class Guard:
    """Calls one dependency under its policy. Share one guard per dependency per process."""

    def __init__(
        self,
        dependency: str,
        policy: Policy,
        *,
        is_failure: Callable[[BaseException], bool] = grpc_errors.counts_as_failure,
        is_retryable: Callable[[BaseException], bool] = grpc_errors.is_retryable,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Callable[[], float] = random_module.random,
    ):
        self.dependency = dependency
        self.policy = policy
        self.bulkhead = Bulkhead(
            dependency, max_concurrent=policy.bulkhead.max_concurrent, max_queued=policy.bulkhead.max_queued
        )
        self.breaker = CircuitBreaker(
            dependency,
            is_failure=is_failure,
            failure_rate_threshold=policy.breaker.failure_rate_threshold,
            minimum_calls=policy.breaker.minimum_calls,
            window_seconds=policy.breaker.window_seconds,
            open_seconds=policy.breaker.open_seconds,
            half_open_probes=policy.breaker.half_open_probes,
            on_state_change=_report_state_change,
            clock=clock,
        )
        self.budget = RetryBudget(
            ratio=policy.retry.budget_ratio,
            min_per_second=policy.retry.budget_min_per_second,
            window_seconds=policy.retry.budget_window_seconds,
            clock=clock,
        )
        self._retry = Retry(
            dependency,
            budget=self.budget,
            is_retryable=is_retryable,
            max_attempts=policy.retry.max_attempts,
            backoff_base_seconds=policy.retry.backoff_base_seconds,
            backoff_cap_seconds=policy.retry.backoff_cap_seconds,
            sleep=sleep,
            random=random,
        )
        metrics.breaker_state.labels(dependency).set(BreakerState.CLOSED.value)

    async def call(self, fn: Callable[[float], Awaitable[T]], *, idempotent: bool) -> T:
        """Calls `fn(timeout)` under the policy; `fn` must give up after `timeout` seconds.

        Raises `DeadlineExceeded`, `BulkheadFull` or `BreakerOpen` when the guard refuses by
        itself, otherwise `fn`'s own last error. Only `idempotent` calls are ever retried.
        """
        deadline = current_deadline()
        try:
            if deadline is not None and deadline.expired:
                raise DeadlineExceeded(f"the deadline passed before calling {self.dependency}")
            max_wait = deadline.remaining() if deadline is not None else self.policy.timeout_seconds
            async with self.bulkhead.slot(max_wait):
                return await self._retry.run(lambda: self._attempt(fn), idempotent=idempotent)
        except DeadlineExceeded:
            metrics.rejections.labels(self.dependency, "deadline_exceeded").inc()
            raise
        except BulkheadFull:
            metrics.rejections.labels(self.dependency, "bulkhead_full").inc()
            raise
        except BreakerOpen:
            metrics.rejections.labels(self.dependency, "breaker_open").inc()
            raise

    async def _attempt(self, fn: Callable[[float], Awaitable[T]]) -> T:
        timeout = timeout_for_next_call(self.policy.timeout_seconds)

        async def send() -> T:
            metrics.attempts.labels(self.dependency).inc()
            return await fn(timeout)

        return await self.breaker.call(send)
