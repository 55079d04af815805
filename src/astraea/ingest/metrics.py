"""Prometheus metrics of device ingestion, on a registry owned by the running platform.

Labels stay bounded whatever devices send: realms are created by operators and error names
form a closed set, whereas device ids, interfaces and paths come from the field and would
let one misbehaving fleet blow up the number of time series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from astraea.ingest.messages import Outcome

#: Powers of two up to the group-commit queue's largest batch (512).
_BATCH_SIZE_BUCKETS = tuple(float(2**exponent) for exponent in range(10))


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "astraea_ingested_messages",
            "Device messages accepted by ingestion, by realm.",
            ["realm"],
            registry=registry,
        )
        self.bytes = Counter(
            "astraea_ingested_bytes",
            "MQTT payload bytes of the device messages accepted by ingestion, by realm.",
            ["realm"],
            registry=registry,
        )
        self.device_errors = Counter(
            "astraea_device_errors",
            "Device messages rejected by ingestion, by realm and Astarte device error name.",
            ["realm", "error"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "astraea_ingest_batch_size",
            "Messages per group-commit batch (its count is the number of batches).",
            buckets=_BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_duration = Histogram(
            "astraea_ingest_batch_duration_seconds",
            "Time to handle and durably commit one group-commit batch.",
            registry=registry,
        )
        self._accepted: dict[str, tuple[Counter, Counter]] = {}

    def record(self, realm: str, payload_size: int, outcome: Outcome) -> None:
        """Counts one device publish by what ingestion made of it."""
        if outcome.error is None:
            accepted = self._accepted.get(realm)
            if accepted is None:  # `labels` costs more than the increments; once per realm
                accepted = self._accepted[realm] = (
                    self.messages.labels(realm),
                    self.bytes.labels(realm),
                )
            accepted[0].inc()
            accepted[1].inc(payload_size)
        else:
            self.device_errors.labels(realm, outcome.error.name.value).inc()

    def observe_batch(self, size: int, seconds: float) -> None:
        """One batch handled (or failed: a slow or failing commit is exactly what the
        latency histogram is there to show)."""
        self.batch_size.observe(size)
        self.batch_duration.observe(seconds)
