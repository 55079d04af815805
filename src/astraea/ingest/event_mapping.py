"""What ingestion and registration report, as the trigger events they fire (pure).

Each `Occurrence` pairs what triggers match on (`subject`) with what a delivery carries
(`event`). The events of one outcome become occurrences in Astarte's order (ingestion.md §3-4):
- a data message: `incoming_data` (also for a value then refused), then for a property
  `value_change`, `path_created` or `path_removed`, `value_change_applied`, then for an
  individual datastream path seen for the first time `path_created`, and last, once stored,
  `value_stored`. Astarte accepts `value_stored` triggers but never fires them; Astraea fires
  them as its documentation describes ("after it is saved to the database");
- a property that a `/producer/properties` purge removed: `path_removed` only;
- a registration: `device_registered`;
- an introspection: `incoming_introspection`, then `interface_removed`/`interface_added` by
  name (a major change removes the old major and adds the new one), then
  `interface_minor_updated`.
Timestamps are the value timestamp for data events and the reception time otherwise.

`wants` tells which (kind, interface, major) the realm has triggers for; occurrences nobody
listens to are not built, which keeps realms whose triggers match rare events cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from astraea.core import trigger_events as fired
from astraea.core.trigger_matching import DataEvent, DeviceEvent
from astraea.core.triggers import DataTriggerEvent, DeviceTriggerEvent
from astraea.core.values import datetime_to_millis
from astraea.ingest import events as ingest
from astraea.ingest.messages import Outcome

Wants = Callable[[DataTriggerEvent | DeviceTriggerEvent, str | None, int | None], bool]


def _everything(kind: DataTriggerEvent | DeviceTriggerEvent, *_: object) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Occurrence:
    realm: str
    subject: DataEvent | DeviceEvent
    event: fired.Event
    timestamp_ms: int

    @property
    def device_id(self) -> str:
        return self.subject.device_id


def outcome_occurrences(outcome: Outcome, wants: Wants = _everything) -> list[Occurrence]:
    # A property change comes from a data message, or else from a purge.
    incoming = next((e for e in outcome.events if isinstance(e, ingest.IncomingData)), None)
    found = [
        occurrence
        for event in outcome.events
        for occurrence in _occurrences(event, wants, from_data=incoming is not None)
    ]
    stored_kind = DataTriggerEvent.VALUE_STORED
    if (
        incoming is not None
        and outcome.accepted
        and wants(stored_kind, incoming.interface_name, incoming.major)
    ):
        stored = fired.ValueStored(incoming.interface_name, incoming.path, incoming.value)
        found.append(_data(incoming, stored_kind, stored, incoming.value))
    return found


def _occurrences(
    event: ingest.IngestEvent, wants: Wants, *, from_data: bool
) -> Iterator[Occurrence]:
    """Data events are checked against `wants` before they are built (they come with every
    message); the rarer device events after."""
    if isinstance(event, ingest.IncomingData):
        if wants(DataTriggerEvent.INCOMING_DATA, event.interface_name, event.major):
            received = fired.IncomingData(event.interface_name, event.path, event.value)
            yield _data(event, DataTriggerEvent.INCOMING_DATA, received, event.value)
    elif isinstance(event, ingest.PropertyChanged):
        for occurrence in _property_change(event, from_data=from_data):
            if wants(occurrence.subject.kind, event.interface_name, event.major):
                yield occurrence
    elif isinstance(event, ingest.DatastreamPathCreated):
        if wants(DataTriggerEvent.PATH_CREATED, event.interface_name, event.major):
            created = fired.PathCreated(event.interface_name, event.path, event.value)
            yield _data(event, DataTriggerEvent.PATH_CREATED, created, event.value)
    else:
        for occurrence in _device_occurrences(event):
            if wants(occurrence.subject.kind, None, None):
                yield occurrence


def _device_occurrences(
    event: ingest.DeviceRegistered
    | ingest.DeviceConnected
    | ingest.DeviceDisconnected
    | ingest.DeviceErrorOccurred
    | ingest.IntrospectionReceived,
) -> Iterator[Occurrence]:
    if isinstance(event, ingest.DeviceRegistered):
        yield _device(event, DeviceTriggerEvent.DEVICE_REGISTERED, fired.DeviceRegistered())
    elif isinstance(event, ingest.DeviceConnected):
        yield _device(event, DeviceTriggerEvent.DEVICE_CONNECTED, fired.DeviceConnected(event.ip))
    elif isinstance(event, ingest.DeviceDisconnected):
        yield _device(event, DeviceTriggerEvent.DEVICE_DISCONNECTED, fired.DeviceDisconnected())
    elif isinstance(event, ingest.DeviceErrorOccurred):
        error = fired.DeviceError(event.name, event.metadata)
        yield _device(event, DeviceTriggerEvent.DEVICE_ERROR, error)
    else:
        yield from _introspection(event)


def _property_change(event: ingest.PropertyChanged, *, from_data: bool) -> Iterator[Occurrence]:
    name, path, old, new = event.interface_name, event.path, event.old, event.new
    if from_data:
        changed = fired.ValueChange(name, path, old, new)
        yield _data(event, DataTriggerEvent.VALUE_CHANGE, changed, new)
    if old is None:
        yield _data(event, DataTriggerEvent.PATH_CREATED, fired.PathCreated(name, path, new), new)
    if new is None:
        yield _data(event, DataTriggerEvent.PATH_REMOVED, fired.PathRemoved(name, path), None)
    if from_data:
        applied = fired.ValueChangeApplied(name, path, old, new)
        yield _data(event, DataTriggerEvent.VALUE_CHANGE_APPLIED, applied, new)


def _introspection(event: ingest.IntrospectionReceived) -> Iterator[Occurrence]:
    previous, current = event.previous, event.current
    declared = {name: fired.InterfaceVersion(*version) for name, version in current.items()}
    yield _device(
        event, DeviceTriggerEvent.INCOMING_INTROSPECTION, fired.IncomingIntrospection(declared)
    )
    minor_updates = []
    for name in sorted(previous.keys() | current.keys()):
        old, new = previous.get(name), current.get(name)
        if old is not None and (new is None or new[0] != old[0]):
            removed = fired.InterfaceRemoved(name, old[0])
            yield _device(event, DeviceTriggerEvent.INTERFACE_REMOVED, removed, name, old[0])
        if new is not None and (old is None or old[0] != new[0]):
            added = fired.InterfaceAdded(name, *new)
            yield _device(event, DeviceTriggerEvent.INTERFACE_ADDED, added, name, new[0])
        elif new is not None and old is not None and old[1] != new[1]:
            minor_updates.append(fired.InterfaceMinorUpdated(name, new[0], old[1], new[1]))
    for updated in minor_updates:
        yield _device(
            event,
            DeviceTriggerEvent.INTERFACE_MINOR_UPDATED,
            updated,
            updated.interface,
            updated.major_version,
        )


def _device(
    source: ingest.DeviceEvent,
    kind: DeviceTriggerEvent,
    event: fired.Event,
    interface: str | None = None,
    major: int | None = None,
) -> Occurrence:
    subject = DeviceEvent(kind, source.device_id, interface, major)
    return Occurrence(source.realm, subject, event, datetime_to_millis(source.at))


def _data(
    source: ingest.IncomingData | ingest.PropertyChanged | ingest.DatastreamPathCreated,
    kind: DataTriggerEvent,
    event: fired.Event,
    value: object,
) -> Occurrence:
    """`value` is what value operators test: the new one of a change, None for a removal."""
    subject = DataEvent(
        kind, source.device_id, source.interface_name, source.major, source.path, value
    )
    at = source.at if isinstance(source, ingest.PropertyChanged) else source.timestamp or source.at
    return Occurrence(source.realm, subject, event, datetime_to_millis(at))
