"""Prometheus families for the resilience mechanisms, labelled by the dependency called."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

breaker_state = Gauge(
    "agora_breaker_state", "Circuit state per dependency: 0 closed, 1 open, 2 half-open", ["dependency"]
)
attempts = Counter(
    "agora_resilience_attempts_total", "Attempts sent to a dependency, first tries and retries", ["dependency"]
)
retries = Counter("agora_resilience_retries_total", "Retries sent to a dependency", ["dependency"])
rejections = Counter(
    "agora_resilience_rejections_total",
    "Calls or retries refused without asking the dependency, by reason: "
    "bulkhead_full, breaker_open, retry_budget_exhausted, deadline_exceeded",
    ["dependency", "reason"],
)
