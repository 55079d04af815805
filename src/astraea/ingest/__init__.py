"""The ingestion pipeline ("data updater"): decode, validate and store device messages,
keep device state, and report device errors and events."""

from astraea.ingest.errors import DeviceError, ErrorName
from astraea.ingest.events import (
    DatastreamPathCreated,
    DeviceConnected,
    DeviceDisconnected,
    DeviceErrorOccurred,
    DeviceEvent,
    IncomingData,
    IngestEvent,
    IntrospectionReceived,
    PropertyChanged,
)
from astraea.ingest.ingestor import Ingestor
from astraea.ingest.messages import (
    Connected,
    DeviceMessage,
    DevicePublish,
    Disconnected,
    Outcome,
    Published,
)

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
    "Disconnected",
    "ErrorName",
    "IncomingData",
    "IngestEvent",
    "Ingestor",
    "IntrospectionReceived",
    "Outcome",
    "PropertyChanged",
    "Published",
]
