"""What ingestion reports happened, for the trigger engine and channels to consume.

Each `Outcome` carries the events of its message, in order. They mirror the facts Astarte's
triggers are built on; turning them into trigger events (matching, payload shapes) is the
consumer's job, so they carry plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    realm: str
    device_id: str
    at: datetime  # reception time of the message that caused the event


@dataclass(frozen=True, slots=True)
class DeviceConnected(DeviceEvent):
    ip: str


@dataclass(frozen=True, slots=True)
class DeviceRegistered(DeviceEvent):
    """Pairing registered the device."""


@dataclass(frozen=True, slots=True)
class DeviceDisconnected(DeviceEvent):
    """Only for devices that were connected."""


@dataclass(frozen=True, slots=True)
class IntrospectionReceived(DeviceEvent):
    """Both introspections as name → (major, minor): interfaces added, removed and
    minor-updated are their difference."""

    previous: dict[str, tuple[int, int]]
    current: dict[str, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class IncomingData(DeviceEvent):
    """A well-formed data message, before it is stored (also when it is then refused as an
    unset); `value` None is an unset, `payload` the raw BSON, `timestamp` the value timestamp
    the device sent where its mapping takes one (None: the value is timed at reception)."""

    interface_name: str
    major: int
    path: str
    value: object | None
    payload: bytes
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class PropertyChanged(DeviceEvent):
    """A stored property that appeared (`old` None), went (`new` None) or changed."""

    interface_name: str
    major: int
    path: str
    old: object | None
    new: object | None


@dataclass(frozen=True, slots=True)
class DatastreamPathCreated(DeviceEvent):
    """The first live sample of an individual datastream path, which Astarte's documentation
    promises a `path_created` trigger for; `timestamp` is the sample's value timestamp."""

    interface_name: str
    major: int
    path: str
    value: object
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class DeviceErrorOccurred(DeviceEvent):
    name: str
    metadata: dict[str, str]


IngestEvent = (
    DeviceRegistered
    | DeviceConnected
    | DeviceDisconnected
    | IntrospectionReceived
    | IncomingData
    | PropertyChanged
    | DatastreamPathCreated
    | DeviceErrorOccurred
)
