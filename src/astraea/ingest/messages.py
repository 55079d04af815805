"""What ingestion makes of one device message (its input is `astraea.bus.messages`)."""

from __future__ import annotations

from dataclasses import dataclass

from astraea.core.trigger_deliveries import QueuedDelivery
from astraea.ingest.errors import DeviceError
from astraea.ingest.events import IngestEvent


@dataclass(frozen=True, slots=True)
class DevicePublish:
    """A message the transport must publish to a device."""

    realm: str
    device_id: str
    topic: str
    payload: bytes
    qos: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message. Accepted when `error` is None; otherwise the message was
    discarded, and the device must be disconnected when `error.clean_session`. `queued`: the
    trigger deliveries it fired, by queue (policy) name, as stored."""

    error: DeviceError | None = None
    publishes: tuple[DevicePublish, ...] = ()
    events: tuple[IngestEvent, ...] = ()
    queued: tuple[tuple[str, QueuedDelivery], ...] = ()

    @property
    def accepted(self) -> bool:
        return self.error is None

    @property
    def disconnect(self) -> bool:
        return self.error is not None and self.error.clean_session
