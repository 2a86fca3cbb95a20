"""Prometheus families for the resilience mechanisms, labelled by the dependency called."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

breaker_state = Gauge(
    "agora_breaker_state", "Circuit state per dependency: 0 closed, 1 half-open, 2 open", ["dependency"]
)
attempts = Counter(
    "agora_resilience_attempts_total", "Attempts sent to a dependency, first tries and retries", ["dependency"]
)
retries = Counter("agora_resilience_retries_total", "Retries sent to a dependency", ["dependency"])
retry_budget_exhausted = Counter(
    "agora_resilience_retry_budget_exhausted_total",
    "Retries not made because the dependency's retry budget was empty",
    ["dependency"],
)
bulkhead_rejections = Counter(
    "agora_resilience_bulkhead_rejections_total",
    "Calls refused at once because every slot and queue place was taken",
    ["dependency"],
)
breaker_rejections = Counter(
    "agora_resilience_breaker_rejections_total",
    "Attempts refused at once because the circuit was open or its probes were taken",
    ["dependency"],
)
deadline_rejections = Counter(
    "agora_resilience_deadline_rejections_total",
    "Calls not made, or given up while queued, because the caller's deadline had passed",
    ["dependency"],
)
