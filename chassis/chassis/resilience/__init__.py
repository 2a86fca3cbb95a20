"""Design for failure: deadlines, circuit breakers, retry budgets and bulkheads per dependency.

Policies are data (`deploy/resilience.toml`, read by `load_policies`); a `Guard` applies one
dependency's policy to each call. Nothing here knows about gRPC except `grpc_errors`, which
supplies the default failure and retry predicates. docs/resilience.md tells the whole story.
"""

from chassis.resilience.breaker import BreakerState, CircuitBreaker
from chassis.resilience.bulkhead import Bulkhead
from chassis.resilience.deadline import (
    Deadline,
    current_deadline,
    deadline_scope,
    remaining,
    timeout_for_next_call,
)
from chassis.resilience.errors import BreakerOpen, BulkheadFull, DeadlineExceeded, ResilienceError
from chassis.resilience.guard import Guard
from chassis.resilience.policy import (
    BreakerPolicy,
    BulkheadPolicy,
    Policies,
    Policy,
    PolicyError,
    RetryPolicy,
    load_policies,
    parse_policies,
)
from chassis.resilience.retry import Retry, RetryBudget, backoff

__all__ = [
    "BreakerOpen",
    "BreakerPolicy",
    "BreakerState",
    "Bulkhead",
    "BulkheadFull",
    "BulkheadPolicy",
    "CircuitBreaker",
    "Deadline",
    "DeadlineExceeded",
    "Guard",
    "Policies",
    "Policy",
    "PolicyError",
    "ResilienceError",
    "Retry",
    "RetryBudget",
    "RetryPolicy",
    "backoff",
    "current_deadline",
    "deadline_scope",
    "load_policies",
    "parse_policies",
    "remaining",
    "timeout_for_next_call",
]
