"""Design for failure: deadlines, circuit breakers, retry budgets and bulkheads per dependency.

Policies are data (`deploy/resilience.toml`, see `policy`); `Guard` applies one dependency's
policy to each call. Nothing here knows about gRPC except `grpc_errors`, which only reads
status names.
"""

from chassis.resilience.breaker import BreakerState, CircuitBreaker
from chassis.resilience.bulkhead import Bulkhead
from chassis.resilience.deadline import Deadline, current_deadline, deadline_scope, timeout_for_next_call
from chassis.resilience.errors import BreakerOpen, BulkheadFull, DeadlineExceeded, ResilienceError
from chassis.resilience.guard import Guard
from chassis.resilience.policy import (
    BreakerSettings,
    BulkheadSettings,
    Policies,
    Policy,
    RetrySettings,
    load_policies,
)
from chassis.resilience.retry import Retry, RetryBudget, backoff

__all__ = [
    "BreakerOpen",
    "BreakerSettings",
    "BreakerState",
    "Bulkhead",
    "BulkheadFull",
    "BulkheadSettings",
    "CircuitBreaker",
    "Deadline",
    "DeadlineExceeded",
    "Guard",
    "Policies",
    "Policy",
    "ResilienceError",
    "Retry",
    "RetryBudget",
    "RetrySettings",
    "backoff",
    "current_deadline",
    "deadline_scope",
    "load_policies",
    "timeout_for_next_call",
]
