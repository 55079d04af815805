"""The ingestion pipeline's input (device messages) and output (outcomes, device publishes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from astraea.ingest.errors import DeviceError
from astraea.ingest.events import IngestEvent


@dataclass(frozen=True, slots=True)
class Connected:
    ip: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    pass


@dataclass(frozen=True, slots=True)
class Published:
    topic_suffix: str  # the topic after `<realm>/<device_id>`: "" or "/..."
    payload: bytes
    qos: int


@dataclass(frozen=True, slots=True)
class DeviceMessage:
    realm: str
    device_id: str  # canonical 22-character form
    kind: Connected | Disconnected | Published
    received_at: datetime  # aware UTC


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
    discarded, and the device must be disconnected when `error.clean_session`."""

    error: DeviceError | None = None
    publishes: tuple[DevicePublish, ...] = ()
    events: tuple[IngestEvent, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.error is None

    @property
    def disconnect(self) -> bool:
        return self.error is not None and self.error.clean_session
