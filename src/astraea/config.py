"""Settings of one platform process; the CLI fills them from flags and ASTRAEA_* variables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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

    @property
    def database_url(self) -> str:
        return f"sqlite:///{(self.data_dir / 'astraea.db').resolve()}"
