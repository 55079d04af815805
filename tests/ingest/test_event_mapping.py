"""Ingestion outcomes and registrations as the trigger events they fire, in Astarte's order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from astraea.core import trigger_events as fired
from astraea.core.trigger_matching import DataEvent, DeviceEvent
from astraea.core.triggers import DataTriggerEvent as Data
from astraea.core.triggers import DeviceTriggerEvent as Device
from astraea.core.values import datetime_to_millis
from astraea.ingest import events as ingest
from astraea.ingest.errors import DeviceError, ErrorName
from astraea.ingest.event_mapping import (
    Occurrence,
    outcome_occurrences,
)
from astraea.ingest.messages import Outcome

REALM = "test"
DEVICE = "ydqBlFsGQ--xZ-_efQxuLw"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
T0_MS = datetime_to_millis(T0)
STAMP = T0 - timedelta(hours=1)
VALUES = "org.example.Values"
PROPS = "org.example.Props"


def device_occurrence(
    kind: Device,
    event: fired.Event,
    interface: str | None = None,
    major: int | None = None,
) -> Occurrence:
    return Occurrence(REALM, DeviceEvent(kind, DEVICE, interface, major), event, T0_MS)


def data_occurrence(
    kind: Data,
    event: fired.Event,
    value: object,
    *,
    interface: str = VALUES,
    major: int = 1,
    path: str = "/s1/value",
    at: datetime = T0,
) -> Occurrence:
    subject = DataEvent(kind, DEVICE, interface, major, path, value)
    return Occurrence(REALM, subject, event, datetime_to_millis(at))


def incoming(
    value: object, *, interface: str = VALUES, major: int = 1, stamp: datetime | None = None
) -> ingest.IncomingData:
    path = "/s1/value" if interface == VALUES else "/lamp/name"
    return ingest.IncomingData(REALM, DEVICE, T0, interface, major, path, value, b"", stamp)


def changed(old: object, new: object, path: str = "/lamp/name") -> ingest.PropertyChanged:
    return ingest.PropertyChanged(REALM, DEVICE, T0, PROPS, 0, path, old, new)


def test_connection_events() -> None:
    outcomes = [
        Outcome(events=(ingest.DeviceConnected(REALM, DEVICE, T0, "192.0.2.7"),)),
        Outcome(events=(ingest.DeviceDisconnected(REALM, DEVICE, T0),)),
    ]
    assert [o for outcome in outcomes for o in outcome_occurrences(outcome)] == [
        device_occurrence(Device.DEVICE_CONNECTED, fired.DeviceConnected("192.0.2.7")),
        device_occurrence(Device.DEVICE_DISCONNECTED, fired.DeviceDisconnected()),
    ]


def test_refused_value_fires_incoming_data_and_the_error() -> None:
    metadata = {"interface": f'"{VALUES}"', "base64_payload": ""}
    error = ingest.DeviceErrorOccurred(REALM, DEVICE, T0, "unset_on_datastream", metadata)
    outcome = Outcome(
        error=DeviceError(ErrorName.UNSET_ON_DATASTREAM, metadata),
        events=(incoming(None), error),
    )
    assert outcome_occurrences(outcome) == [
        data_occurrence(Data.INCOMING_DATA, fired.IncomingData(VALUES, "/s1/value", None), None),
        device_occurrence(Device.DEVICE_ERROR, fired.DeviceError("unset_on_datastream", metadata)),
    ]


def test_first_datastream_sample_with_explicit_timestamp() -> None:
    created = ingest.DatastreamPathCreated(REALM, DEVICE, T0, VALUES, 1, "/s1/value", 2.5, STAMP)
    outcome = Outcome(events=(incoming(2.5, stamp=STAMP), created))
    assert outcome_occurrences(outcome) == [
        data_occurrence(
            Data.INCOMING_DATA, fired.IncomingData(VALUES, "/s1/value", 2.5), 2.5, at=STAMP
        ),
        data_occurrence(
            Data.PATH_CREATED, fired.PathCreated(VALUES, "/s1/value", 2.5), 2.5, at=STAMP
        ),
        data_occurrence(
            Data.VALUE_STORED, fired.ValueStored(VALUES, "/s1/value", 2.5), 2.5, at=STAMP
        ),
    ]


def test_property_set_for_the_first_time() -> None:
    outcome = Outcome(events=(incoming("lamp", interface=PROPS, major=0), changed(None, "lamp")))
    props = {"interface": PROPS, "major": 0, "path": "/lamp/name"}
    assert outcome_occurrences(outcome) == [
        data_occurrence(
            Data.INCOMING_DATA, fired.IncomingData(PROPS, "/lamp/name", "lamp"), "lamp", **props
        ),
        data_occurrence(
            Data.VALUE_CHANGE,
            fired.ValueChange(PROPS, "/lamp/name", None, "lamp"),
            "lamp",
            **props,
        ),
        data_occurrence(
            Data.PATH_CREATED, fired.PathCreated(PROPS, "/lamp/name", "lamp"), "lamp", **props
        ),
        data_occurrence(
            Data.VALUE_CHANGE_APPLIED,
            fired.ValueChangeApplied(PROPS, "/lamp/name", None, "lamp"),
            "lamp",
            **props,
        ),
        data_occurrence(
            Data.VALUE_STORED, fired.ValueStored(PROPS, "/lamp/name", "lamp"), "lamp", **props
        ),
    ]


def test_property_unset_and_change() -> None:
    unset = Outcome(events=(incoming(None, interface=PROPS, major=0), changed("lamp", None)))
    assert [(o.subject.kind, o.event) for o in outcome_occurrences(unset)] == [
        (Data.INCOMING_DATA, fired.IncomingData(PROPS, "/lamp/name", None)),
        (Data.VALUE_CHANGE, fired.ValueChange(PROPS, "/lamp/name", "lamp", None)),
        (Data.PATH_REMOVED, fired.PathRemoved(PROPS, "/lamp/name")),
        (Data.VALUE_CHANGE_APPLIED, fired.ValueChangeApplied(PROPS, "/lamp/name", "lamp", None)),
        (Data.VALUE_STORED, fired.ValueStored(PROPS, "/lamp/name", None)),
    ]
    change = Outcome(events=(incoming("desk", interface=PROPS, major=0), changed("lamp", "desk")))
    assert [
        (o.subject.kind, getattr(o.subject, "value", None)) for o in outcome_occurrences(change)
    ] == [
        (Data.INCOMING_DATA, "desk"),
        (Data.VALUE_CHANGE, "desk"),
        (Data.VALUE_CHANGE_APPLIED, "desk"),
        (Data.VALUE_STORED, "desk"),
    ]


def test_purged_properties_are_only_removed() -> None:
    outcome = Outcome(events=(changed("lamp", None), changed(True, None, "/desk/enabled")))
    assert [(o.subject.kind, o.event) for o in outcome_occurrences(outcome)] == [
        (Data.PATH_REMOVED, fired.PathRemoved(PROPS, "/lamp/name")),
        (Data.PATH_REMOVED, fired.PathRemoved(PROPS, "/desk/enabled")),
    ]


def test_introspection_diff() -> None:
    previous = {"a.Same": (1, 0), "b.Minor": (1, 2), "c.Major": (2, 0), "e.Gone": (0, 4)}
    current = {"a.Same": (1, 0), "b.Minor": (1, 3), "c.Major": (3, 0), "d.New": (0, 1)}
    event = ingest.IntrospectionReceived(REALM, DEVICE, T0, previous, current)
    version = fired.InterfaceVersion
    assert outcome_occurrences(Outcome(events=(event,))) == [
        device_occurrence(
            Device.INCOMING_INTROSPECTION,
            fired.IncomingIntrospection(
                {
                    "a.Same": version(1, 0),
                    "b.Minor": version(1, 3),
                    "c.Major": version(3, 0),
                    "d.New": version(0, 1),
                }
            ),
        ),
        device_occurrence(
            Device.INTERFACE_REMOVED, fired.InterfaceRemoved("c.Major", 2), "c.Major", 2
        ),
        device_occurrence(
            Device.INTERFACE_ADDED, fired.InterfaceAdded("c.Major", 3, 0), "c.Major", 3
        ),
        device_occurrence(Device.INTERFACE_ADDED, fired.InterfaceAdded("d.New", 0, 1), "d.New", 0),
        device_occurrence(
            Device.INTERFACE_REMOVED, fired.InterfaceRemoved("e.Gone", 0), "e.Gone", 0
        ),
        device_occurrence(
            Device.INTERFACE_MINOR_UPDATED,
            fired.InterfaceMinorUpdated("b.Minor", 1, 2, 3),
            "b.Minor",
            1,
        ),
    ]


def test_registration() -> None:
    registered = Outcome(events=(ingest.DeviceRegistered(REALM, DEVICE, T0),))
    assert outcome_occurrences(registered) == [
        device_occurrence(Device.DEVICE_REGISTERED, fired.DeviceRegistered())
    ]


def test_only_wanted_occurrences_are_built() -> None:
    created = ingest.DatastreamPathCreated(REALM, DEVICE, T0, VALUES, 1, "/s1/value", 2.5, STAMP)
    data = Outcome(events=(incoming(2.5, stamp=STAMP), created))
    wanted = {(Data.PATH_CREATED, VALUES, 1)}

    def wants(kind: Data | Device, interface: str | None, major: int | None) -> bool:
        return (kind, interface, major) in wanted

    assert outcome_occurrences(data, wants) == [
        data_occurrence(
            Data.PATH_CREATED, fired.PathCreated(VALUES, "/s1/value", 2.5), 2.5, at=STAMP
        )
    ]
    prop = Outcome(events=(incoming("lamp", interface=PROPS, major=0), changed("old", "lamp")))
    wanted = {(Data.VALUE_CHANGE_APPLIED, PROPS, 0)}
    assert [o.subject.kind for o in outcome_occurrences(prop, wants)] == [Data.VALUE_CHANGE_APPLIED]
    connected = Outcome(events=(ingest.DeviceConnected(REALM, DEVICE, T0, "10.0.0.1"),))
    assert outcome_occurrences(connected, wants) == []
    wanted = {(Device.DEVICE_CONNECTED, None, None)}
    assert len(outcome_occurrences(connected, wants)) == 1
