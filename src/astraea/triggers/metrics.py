"""Prometheus metrics of the trigger engine, labelled by realm and trigger name.

Label values stay bounded: triggers are installed by administrators, never named by devices.
"""

from __future__ import annotations

import enum

from prometheus_client import CollectorRegistry, Counter, Histogram

# Seconds from the match to the successful delivery, retries and queueing included.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class DropReason(enum.StrEnum):
    DISCARDED = "discarded"  # failed, and the policy does not retry (again)
    CAPACITY = "capacity"  # the oldest in a full queue
    EXPIRED = "expired"  # older than the policy's event_ttl
    TRIGGER_MISSING = "trigger_missing"  # the trigger was deleted before delivery
    UNDELIVERABLE = "undeliverable"  # cannot be delivered (e.g. no AMQP broker configured)


class TriggerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["realm", "trigger"]
        self.delivered = Counter(
            "astraea_trigger_events_delivered",
            "Events delivered successfully (HTTP 2xx/3xx, or confirmed by the AMQP broker).",
            labels,
            registry=registry,
        )
        self.retried = Counter(
            "astraea_trigger_delivery_retries",
            "Failed delivery attempts that will be retried.",
            labels,
            registry=registry,
        )
        self.dropped = Counter(
            "astraea_trigger_events_dropped",
            "Events given up without delivery, by reason.",
            [*labels, "reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "astraea_trigger_delivery_latency_seconds",
            "Time from the match to the successful delivery.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    def drop(self, realm: str, trigger: str, reason: DropReason, count: int = 1) -> None:
        self.dropped.labels(realm, trigger, str(reason)).inc(count)
