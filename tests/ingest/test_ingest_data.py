"""Data messages through the ingestion pipeline: what gets stored, when, and in which order."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import bson
import pytest
from ingest_support import (
    DEVICE_PROPS,
    INTERFACES,
    OBJECTS,
    REALM,
    T0,
    VALUES,
    Clock,
    MessageFactory,
    bson_value,
    process_one,
)

from astraea.core.device_id import decode_device_id
from astraea.core.interface import Aggregation
from astraea.core.interface_parser import parse_interface
from astraea.ingest import (
    DatastreamPathCreated,
    DeviceMessage,
    IncomingData,
    Ingestor,
    PropertyChanged,
    Published,
)
from astraea.storage import open_storage
from astraea.storage.base import Realm, Storage, StoredSample

IND = Aggregation.INDIVIDUAL
LATER = T0 + timedelta(days=1)


async def samples(
    storage: Storage, device: str, interface: str, major: int, path: str
) -> list[StoredSample]:
    aggregation = Aggregation.OBJECT if interface == OBJECTS else IND
    return await storage.values.samples(
        REALM, device, interface, major, path, aggregation, now=LATER
    )


async def test_individual_sample_is_stored_at_reception_time(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    payload = bson_value(21.5)
    outcome = await process_one(ingestor, publish(f"/{VALUES}/s1/value", payload))
    assert outcome.accepted and not outcome.disconnect and outcome.publishes == ()
    assert outcome.events == (
        IncomingData(REALM, device, T0, VALUES, 1, "/s1/value", 21.5, payload),
        DatastreamPathCreated(REALM, device, T0, VALUES, 1, "/s1/value", 21.5, T0),
    )
    assert await samples(storage, device, VALUES, 1, "/s1/value") == [
        StoredSample("/s1/value", 21.5, T0, T0)
    ]


async def test_values_are_canonicalised(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    """The SDK sends int32 where doubles and longintegers are declared."""
    await ingestor.process(
        [
            publish(f"/{VALUES}/s1/value", bson_value(2)),
            publish(f"/{VALUES}/s1/stamped", bson_value(7)),
            publish(f"/{VALUES}/s1/tags", bson_value(["a", "b"])),
        ]
    )
    (double,) = await samples(storage, device, VALUES, 1, "/s1/value")
    assert double.value == 2.0 and isinstance(double.value, float)
    assert [s.value for s in await samples(storage, device, VALUES, 1, "/s1/stamped")] == [7]
    assert [s.value for s in await samples(storage, device, VALUES, 1, "/s1/tags")] == [["a", "b"]]


async def test_explicit_timestamp_only_where_the_mapping_asks(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    stamp = T0 - timedelta(hours=1, milliseconds=250)
    await ingestor.process(
        [
            publish(f"/{VALUES}/s1/stamped", bson_value(1, stamp)),
            publish(f"/{VALUES}/s2/stamped", bson_value(2)),
            publish(f"/{VALUES}/s1/value", bson_value(3.0, stamp)),
        ]
    )
    (stamped,) = await samples(storage, device, VALUES, 1, "/s1/stamped")
    assert stamped.value_timestamp == stamp and stamped.reception_timestamp >= T0
    (unstamped,) = await samples(storage, device, VALUES, 1, "/s2/stamped")
    assert unstamped.value_timestamp == unstamped.reception_timestamp
    (ignored,) = await samples(storage, device, VALUES, 1, "/s1/value")
    assert ignored.value_timestamp == ignored.reception_timestamp >= T0


async def test_object_aggregate(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    stamp = T0 - timedelta(minutes=5)
    outcomes = await ingestor.process(
        [
            publish(f"/{OBJECTS}/kitchen", bson_value({"temp": 20, "hum": 40}, stamp)),
            publish(f"/{OBJECTS}/hall", bson.encode({"hum": 10})),  # legacy form, no "v"
        ]
    )
    assert all(outcome.accepted for outcome in outcomes)
    (kitchen,) = await samples(storage, device, OBJECTS, 0, "/kitchen")
    assert kitchen.value == {"temp": 20.0, "hum": 40} and kitchen.value_timestamp == stamp
    assert [s.value for s in await samples(storage, device, OBJECTS, 0, "/hall")] == [{"hum": 10}]


async def test_samples_of_a_batch_keep_arrival_order(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    """Messages received in the same microsecond still get distinct, ordered receptions."""
    batch = [publish(f"/{VALUES}/s1/count", bson_value(i), at=T0) for i in range(50)]
    await ingestor.process(batch[:20])
    await ingestor.process(batch[20:])
    stored = await samples(storage, device, VALUES, 1, "/s1/count")
    assert [s.value for s in stored] == list(range(50))
    receptions = [s.reception_timestamp for s in stored]
    assert receptions == sorted(set(receptions))


async def test_interleaved_devices_keep_their_own_order(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    other = "AAAAAAAAAAAAAAAAAAAAAA"
    await storage.devices.register(REALM, other, "hash", {VALUES: (1, 0)}, T0)
    batch = [
        publish(f"/{VALUES}/s/count", bson_value(i), device_id=(device, other)[i % 2])
        for i in range(40)
    ]
    await ingestor.process(batch)
    assert [s.value for s in await samples(storage, device, VALUES, 1, "/s/count")] == list(
        range(0, 40, 2)
    )
    assert [s.value for s in await samples(storage, other, VALUES, 1, "/s/count")] == list(
        range(1, 40, 2)
    )


async def test_batch_is_durable_when_process_returns(
    ingestor: Ingestor, device: str, publish: MessageFactory, db_path: Path
) -> None:
    await ingestor.process(
        [publish(f"/{VALUES}/s{i}/value", bson_value(float(i))) for i in range(10)]
        + [publish(f"/{DEVICE_PROPS}/config/name", bson_value("x"))]
    )
    # Another connection sees only what was committed.
    connection = sqlite3.connect(db_path)
    try:
        rows = connection.execute(
            "SELECT count(*) FROM individual_datastreams WHERE device_id = ?",
            (decode_device_id(device),),
        ).fetchone()
        props = connection.execute("SELECT count(*) FROM individual_properties").fetchone()
        paths = connection.execute("SELECT count(*) FROM datastream_paths").fetchone()
    finally:
        connection.close()
    assert (rows[0], props[0], paths[0]) == (10, 1, 10)


async def test_data_survives_reopening(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "reopen.db"
    storage = await open_storage(f"sqlite://{path}")
    device = "AAAAAAAAAAAAAAAAAAAAAA"
    try:
        await storage.realms.create(Realm(name=REALM, jwt_public_key_pem="pem"))
        await storage.interfaces.install(REALM, parse_interface(INTERFACES[0]))
        await storage.devices.register(REALM, device, "hash", {VALUES: (1, 0)}, T0)
        ingestor = Ingestor(storage, clock)
        await ingestor.process(
            [DeviceMessage(REALM, device, Published(f"/{VALUES}/a/value", bson_value(1.5), 1), T0)]
        )
    finally:
        await storage.close()
    reopened = await open_storage(f"sqlite://{path}")
    try:
        assert [s.value for s in await samples(reopened, device, VALUES, 1, "/a/value")] == [1.5]
    finally:
        await reopened.close()


async def test_sample_retention(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory, clock: Clock
) -> None:
    """TTL = min(realm maximum, mapping TTL); the realm setting is re-read after the cache TTL."""
    await ingestor.process(
        [
            publish(f"/{VALUES}/a/short", bson_value(1.0)),
            publish(f"/{VALUES}/a/value", bson_value(2.0)),
        ]
    )
    realm = await storage.realms.get(REALM)
    assert realm is not None
    realm.datastream_maximum_storage_retention = 30
    await storage.realms.update(realm)
    clock.advance(2)
    await ingestor.process(
        [
            publish(f"/{VALUES}/b/short", bson_value(3.0)),
            publish(f"/{VALUES}/b/value", bson_value(4.0)),
        ]
    )

    async def visible(at_seconds: float) -> dict[str, object]:
        now = T0 + timedelta(seconds=at_seconds)
        last = await storage.values.last_samples(REALM, device, VALUES, 1, IND, now=now)
        return {s.path: s.value for s in last}

    assert await visible(31) == {"/a/short": 1.0, "/a/value": 2.0, "/b/short": 3.0, "/b/value": 4.0}
    assert await visible(33) == {"/a/short": 1.0, "/a/value": 2.0}  # realm maximum 30 s
    assert await visible(61) == {"/a/value": 2.0}  # mapping TTL 60 s
    assert await storage.values.purge_expired(T0 + timedelta(seconds=61)) == 6
    assert await visible(0) == {"/a/value": 2.0}


async def test_property_set_change_and_unset(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    path = f"/{DEVICE_PROPS}/lamp/enabled"
    outcomes = await ingestor.process(
        [
            publish(path, bson_value(True)),
            publish(path, bson_value(True)),
            publish(path, bson_value(False)),
            publish(path, b""),
        ]
    )
    assert all(outcome.accepted for outcome in outcomes)
    changes = [
        [(e.old, e.new) for e in outcome.events if isinstance(e, PropertyChanged)]
        for outcome in outcomes
    ]
    assert changes == [[(None, True)], [], [(True, False)], [(False, None)]]
    assert await storage.values.list_properties(REALM, device, DEVICE_PROPS, 0) == []
    await ingestor.process([publish(f"/{DEVICE_PROPS}/config/name", bson_value("x"))])
    stored = await storage.values.list_properties(REALM, device, DEVICE_PROPS, 0)
    assert [(p.path, p.value) for p in stored] == [("/config/name", "x")]


async def test_empty_binary_value_unsets(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    path = f"/{DEVICE_PROPS}/lamp/enabled"
    await ingestor.process([publish(path, bson_value(True)), publish(path, bson_value(b""))])
    assert await storage.values.list_properties(REALM, device, DEVICE_PROPS, 0) == []


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_qos_does_not_change_handling(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory, qos: int
) -> None:
    outcome = await process_one(ingestor, publish(f"/{VALUES}/s/value", bson_value(1.0), qos=qos))
    assert outcome.accepted
    assert len(await samples(storage, device, VALUES, 1, "/s/value")) == 1
