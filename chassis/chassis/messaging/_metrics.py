"""Prometheus families for event delivery, in the process's default registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from chassis.metrics import LATENCY_BUCKETS

outbox_unpublished = Gauge("agora_outbox_unpublished", "Outbox rows committed but not yet published", ["service"])
outbox_oldest_age = Gauge(
    "agora_outbox_oldest_unpublished_age_seconds", "Age of the oldest unpublished outbox row", ["service"]
)
outbox_published = Counter("agora_outbox_published_total", "Events the relay published", ["service"])
outbox_publish_failures = Counter(
    "agora_outbox_publish_failures_total", "Publish attempts the broker did not acknowledge", ["service"]
)
events_consumed = Counter(
    "agora_events_consumed_total",
    "Events a consumer finished with; outcome: applied, duplicate, ignored, retried, dead_lettered",
    ["consumer", "event_type", "outcome"],
)
handler_duration = Histogram(
    "agora_event_handler_duration_seconds",
    "Event handling time, inbox and commit included",
    ["consumer", "event_type"],
    buckets=LATENCY_BUCKETS,
)
dead_letters = Counter("agora_dead_letters_total", "Messages sent to dead letters", ["consumer", "event_type"])
