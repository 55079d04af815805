"""Settings of one platform process; the CLI fills them from flags and ASTRAEA_* variables."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path


class Role(enum.StrEnum):
    """What a process does; `astraea up` runs them all, `astraea serve --role` some."""

    TRANSPORT = "transport"  # MQTT sessions of devices
    INGEST = "ingest"  # decode, validate, store, match triggers
    TRIGGERS = "triggers"  # deliver trigger events
    API = "api"  # the HTTP APIs


ALL_ROLES = frozenset(Role)


@dataclass(slots=True)
class Settings:
    data_dir: Path = Path("astraea-data")
    host: str = "127.0.0.1"
    http_port: int = 4000
    mqtt_port: int = 8883
    broker_url: str | None = None
    housekeeping_public_key: Path | None = None
    mqtt_tls_cert: Path | None = None
    mqtt_tls_key: Path | None = None
    disable_auth: bool = False
    enable_realm_deletion: bool = False
    # RabbitMQ that AMQP trigger actions publish to; None: AMQP actions cannot deliver.
    amqp_url: str | None = None
    # Most samples one AppEngine GET returns (Astarte's APPENGINE_API_MAX_RESULTS_LIMIT).
    appengine_max_results: int = 10_000
    # How often expired datastream samples (database_retention_ttl) are deleted.
    expiry_sweep_seconds: float = 60.0
    # Storage; None: the SQLite file in the data folder.
    database_url: str | None = None
    # The bus between roles; None: in this process's memory (every role must run here).
    bus_url: str | None = None
    # Identifies this process's transport node; None: host name and MQTT port.
    node_name: str | None = None
    roles: frozenset[Role] = field(default_factory=lambda: ALL_ROLES)

    def storage_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'astraea.db').resolve()}"
