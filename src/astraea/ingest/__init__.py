"""The ingestion pipeline ("data updater"): decode, validate and store device messages,
keep device state, and report device errors and events."""

from astraea.bus.messages import Connected, DeviceMessage, Disconnected, Published, Registered
from astraea.ingest.errors import DeviceError, ErrorName
from astraea.ingest.events import (
    DatastreamPathCreated,
    DeviceConnected,
    DeviceDisconnected,
    DeviceErrorOccurred,
    DeviceEvent,
    DeviceRegistered,
    IncomingData,
    IngestEvent,
    IntrospectionReceived,
    PropertyChanged,
)
from astraea.ingest.ingestor import Ingestor
from astraea.ingest.messages import DevicePublish, Outcome

__all__ = [
    "Connected",
    "DatastreamPathCreated",
    "DeviceConnected",
    "DeviceDisconnected",
    "DeviceError",
    "DeviceErrorOccurred",
    "DeviceEvent",
    "DeviceMessage",
    "DevicePublish",
    "DeviceRegistered",
    "Disconnected",
    "ErrorName",
    "IncomingData",
    "IngestEvent",
    "Ingestor",
    "IntrospectionReceived",
    "Outcome",
    "PropertyChanged",
    "Published",
    "Registered",
]
