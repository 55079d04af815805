"""Every device error of ingestion.md §3a: name, metadata, clean session, counters, no writes."""

from __future__ import annotations

import base64
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import bson
import pytest
from ingest_support import (
    DEVICE_PROPS,
    OBJECTS,
    REALM,
    SECRETS,
    SERVER_PROPS,
    SERVER_STREAM,
    T0,
    VALUES,
    MessageFactory,
    bson_value,
    process_one,
)

from astraea.core.interface import Aggregation
from astraea.ingest import DeviceErrorOccurred, ErrorName, IncomingData, Ingestor
from astraea.storage.base import Storage

E = ErrorName


@dataclass(frozen=True)
class Case:
    suffix: str
    payload: bytes
    error: ErrorName
    counted_bytes: int | None  # None: the message does not count in the traffic statistics


def data(interface: str, path: str, payload: bytes, error: ErrorName, counted: bool = True) -> Case:
    size = len(payload) + len(interface) + len(path)
    return Case(f"/{interface}{path}", payload, error, size if counted else None)


CASES = {
    "invalid path": data(VALUES, "/a//value", bson_value(1.0), E.INVALID_PATH),
    "trailing slash": data(VALUES, "/a/value/", bson_value(1.0), E.INVALID_PATH),
    "not in introspection": data(
        "org.astraea.test.Unknown", "/a", bson_value(1), E.INTERFACE_LOADING_FAILED
    ),
    "server-owned properties": data(
        SERVER_PROPS, "/a/level", bson_value(1.0), E.WRITE_ON_SERVER_OWNED_INTERFACE
    ),
    "server-owned datastream": data(
        SERVER_STREAM, "/cmd", bson_value("x"), E.WRITE_ON_SERVER_OWNED_INTERFACE
    ),
    "unknown endpoint": data(VALUES, "/a/nothing", bson_value(1.0), E.MAPPING_NOT_FOUND),
    "partial path": data(VALUES, "/a", bson_value(1.0), E.AMBIGUOUS_PATH),
    "object at endpoint depth": data(
        OBJECTS, "/kitchen/temp", bson_value({"hum": 1}), E.MAPPING_NOT_FOUND
    ),
    "encrypted mapping": data(SECRETS, "/secret", bson_value("x"), E.KEY_AGREEMENT_ERROR),
    "not bson": data(VALUES, "/a/value", b"garbage", E.UNDECODABLE_BSON_PAYLOAD),
    "string for double": data(VALUES, "/a/value", bson_value("1.0"), E.UNEXPECTED_VALUE_TYPE),
    "integer out of range": data(VALUES, "/a/count", bson_value(2**31), E.UNEXPECTED_VALUE_TYPE),
    "document for individual": data(
        VALUES, "/a/value", bson_value({"x": 1.0}), E.UNEXPECTED_VALUE_TYPE
    ),
    "scalar for object": data(OBJECTS, "/kitchen", bson_value(1.0), E.UNEXPECTED_VALUE_TYPE),
    "array too long": data(VALUES, "/a/tags", bson_value(["x"] * 1025), E.VALUE_SIZE_EXCEEDED),
    "payload too large": data(VALUES, "/a/label", bson_value("x" * 65_536), E.VALUE_SIZE_EXCEEDED),
    "unknown object key": data(
        OBJECTS, "/kitchen", bson_value({"hum": 1, "smoke": 1.0}), E.UNEXPECTED_OBJECT_KEY
    ),
    "missing required key": data(
        OBJECTS, "/kitchen", bson_value({"temp": 1.0}), E.MISSING_REQUIRED_MAPPING
    ),
    "unset on datastream": data(VALUES, "/a/value", b"", E.UNSET_ON_DATASTREAM, counted=False),
    "unset not allowed": data(
        DEVICE_PROPS, "/config/name", b"", E.UNSET_NOT_ALLOWED, counted=False
    ),
    "invalid introspection": Case("", b"org.x.A:1", E.INVALID_INTROSPECTION, 9),
    "unknown control": Case("/control/reboot", b"x", E.UNEXPECTED_CONTROL_MESSAGE, 1 + 7),
    "key agreement control": Case(
        "/control/keyAgreement/0", b"", E.UNEXPECTED_CONTROL_MESSAGE, len("/keyAgreement/0")
    ),
    "bad purge list": Case(
        "/control/producer/properties", b"\x00\x00\x00\x01zz", E.PURGE_PROPERTIES_ERROR, None
    ),
    "bad capabilities": Case("/capabilities", b"zlib", E.MALFORMED_CAPABILITIES_MESSAGE, None),
}


def stored_rows(db_path: Path) -> int:
    connection = sqlite3.connect(db_path)
    try:
        return sum(
            connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in (
                "individual_datastreams",
                "object_datastreams",
                "individual_properties",
                "datastream_paths",
            )
        )
    finally:
        connection.close()


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_device_error(
    case: Case,
    ingestor: Ingestor,
    storage: Storage,
    device: str,
    publish: MessageFactory,
    db_path: Path,
) -> None:
    outcome = await process_one(ingestor, publish(case.suffix, case.payload))

    assert outcome.error is not None and outcome.error.name is case.error
    assert not outcome.accepted
    assert outcome.disconnect is (case.error is not E.UNSET_ON_DATASTREAM)
    assert outcome.error.metadata["base64_payload"] == base64.b64encode(case.payload).decode()
    errors = [e for e in outcome.events if isinstance(e, DeviceErrorOccurred)]
    if case.error is E.PURGE_PROPERTIES_ERROR:
        assert errors == []
    else:
        assert errors == [
            DeviceErrorOccurred(REALM, device, T0, case.error, outcome.error.metadata)
        ]

    await ingestor.flush()
    stored = await storage.devices.get(REALM, device)
    assert stored is not None
    assert stored.pending_empty_cache is outcome.disconnect
    expected = (0, 0) if case.counted_bytes is None else (1, case.counted_bytes)
    assert (stored.total_received_msgs, stored.total_received_bytes) == expected
    assert stored_rows(db_path) == 0


async def test_data_error_metadata_quotes_interface_and_path(
    ingestor: Ingestor, publish: MessageFactory
) -> None:
    outcome = await process_one(ingestor, publish(f'/{VALUES}/a"b/nothing', b"\x01"))
    assert outcome.error is not None
    assert outcome.error.metadata == {
        "interface": f'"{VALUES}"',
        "path": '"/a\\"b/nothing"',
        "base64_payload": "AQ==",
    }


async def test_rejected_message_counts_towards_its_interface(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    await ingestor.process([publish(f"/{VALUES}/a/nothing", bson_value(1.0))])
    await ingestor.flush()
    stored = await storage.devices.get(REALM, device)
    assert stored is not None
    use = stored.introspection[VALUES]
    assert (use.exchanged_msgs, use.exchanged_bytes) == (1, stored.total_received_bytes)


async def test_refused_unsets_still_report_incoming_data(
    ingestor: Ingestor, device: str, publish: MessageFactory
) -> None:
    """Astarte fires incoming_data before refusing the unset."""
    outcome = await process_one(ingestor, publish(f"/{DEVICE_PROPS}/config/name", b""))
    assert [type(e) for e in outcome.events] == [IncomingData, DeviceErrorOccurred]


async def test_declared_but_not_installed_interface(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    await storage.devices.set_introspection(REALM, device, {VALUES: (2, 0)})
    ingestor = Ingestor(storage, lambda: T0)  # fresh: reads the new introspection
    outcome = await process_one(ingestor, publish(f"/{VALUES}/a/value", bson_value(1.0)))
    assert outcome.error is not None and outcome.error.name is E.INTERFACE_LOADING_FAILED


async def test_clean_session_is_requested_once(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    outcomes = await ingestor.process(
        [publish(f"/{VALUES}/a/nothing", bson_value(1.0)) for _ in range(3)]
    )
    assert all(outcome.disconnect for outcome in outcomes)
    await ingestor.flush()
    stored = await storage.devices.get(REALM, device)
    assert stored is not None and stored.pending_empty_cache
    assert stored.total_received_msgs == 3


async def test_errors_do_not_disturb_other_messages_of_the_batch(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    outcomes = await ingestor.process(
        [
            publish(f"/{VALUES}/a/value", bson_value(1.0)),
            publish(f"/{VALUES}/a/value", bson.encode({"v": "no"})),
            publish(f"/{VALUES}/a/value", bson_value(3.0)),
        ]
    )
    assert [o.accepted for o in outcomes] == [True, False, True]
    stored = await storage.values.samples(
        REALM, device, VALUES, 1, "/a/value", Aggregation.INDIVIDUAL, now=T0
    )
    assert [s.value for s in stored] == [1.0, 3.0]
