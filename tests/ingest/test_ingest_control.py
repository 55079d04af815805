"""Connection, introspection, emptyCache, producer purge, capabilities, caches and counters."""

from __future__ import annotations

import zlib
from datetime import timedelta

import bson
from ingest_support import (
    DEVICE_PROPS,
    INTERFACES,
    OBJECTS,
    REALM,
    SERVER_PROPS,
    T0,
    VALUES,
    Clock,
    MessageFactory,
    bson_value,
    connected,
    disconnected,
    process_one,
)

from astraea.core.interface_parser import parse_interface
from astraea.core.payloads import PurgeFormat, decode_purge_list
from astraea.ingest import (
    DeviceConnected,
    DeviceDisconnected,
    DevicePublish,
    ErrorName,
    Ingestor,
    IntrospectionReceived,
    PropertyChanged,
)
from astraea.storage.base import PropertyWrite, Storage


def sdk_purge(*entries: str) -> bytes:
    raw = ";".join(entries).encode()
    return len(raw).to_bytes(4, "little") + zlib.compress(raw)


async def test_connection_and_disconnection(
    ingestor: Ingestor, storage: Storage, device: str
) -> None:
    later = T0 + timedelta(minutes=5)
    outcomes = await ingestor.process(
        [
            connected(device, T0, "198.51.100.4"),
            disconnected(device, later),
            disconnected(device, later),
        ]
    )
    assert [o.events for o in outcomes] == [
        (DeviceConnected(REALM, device, T0, "198.51.100.4"),),
        (DeviceDisconnected(REALM, device, later),),
        (),  # it was no longer connected
    ]
    stored = await storage.devices.get(REALM, device)
    assert stored is not None
    assert (stored.connected, stored.last_seen_ip) == (False, "198.51.100.4")
    assert (stored.last_connection, stored.last_disconnection) == (T0, later)


async def test_introspection_is_stored_and_applies_to_later_messages_of_the_batch(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    outcomes = await ingestor.process(
        [
            publish(f"/{VALUES}/a/value", bson_value(1.0)),
            publish("", f"{OBJECTS}:0:1".encode()),
            publish(f"/{VALUES}/a/value", bson_value(2.0)),
            publish(f"/{OBJECTS}/kitchen", bson_value({"hum": 1})),
        ]
    )
    assert [o.error.name if o.error else None for o in outcomes] == [
        None,
        None,
        ErrorName.INTERFACE_LOADING_FAILED,
        None,
    ]
    (event,) = outcomes[1].events
    assert isinstance(event, IntrospectionReceived)
    assert event.current == {OBJECTS: (0, 1)} and event.previous[VALUES] == (1, 0)
    stored = await storage.devices.get(REALM, device)
    assert stored is not None and list(stored.introspection) == [OBJECTS]


async def test_introspection_is_reread_on_connection(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    assert (await process_one(ingestor, publish(f"/{VALUES}/a/value", bson_value(1.0)))).accepted
    # Changed behind the ingestor's back (e.g. by another ingest worker before a handover).
    await storage.devices.set_introspection(REALM, device, {OBJECTS: (0, 1)})
    assert (await process_one(ingestor, publish(f"/{VALUES}/a/value", bson_value(1.0)))).accepted
    await ingestor.process([connected(device, T0)])
    outcome = await process_one(ingestor, publish(f"/{VALUES}/a/value", bson_value(1.0)))
    assert outcome.error is not None and outcome.error.name is ErrorName.INTERFACE_LOADING_FAILED


async def test_empty_cache_resends_server_owned_properties(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    await storage.values.apply(
        [
            PropertyWrite(REALM, device, SERVER_PROPS, 2, "/lamp/level", 2.0, T0),
            PropertyWrite(REALM, device, SERVER_PROPS, 2, "/info/label", "hall", T0),
            PropertyWrite(REALM, device, SERVER_PROPS, 1, "/old/level", 1.0, T0),  # not declared
            PropertyWrite(REALM, device, DEVICE_PROPS, 0, "/config/name", "mine", T0),
        ]
    )
    await storage.devices.set_pending_empty_cache(REALM, device, True)
    outcome = await process_one(ingestor, publish("/control/emptyCache", b"1"))

    assert outcome.accepted and outcome.events == ()
    purge, *values = outcome.publishes
    base = f"{REALM}/{device}"
    assert (purge.topic, purge.qos) == (f"{base}/control/consumer/properties", 2)
    assert decode_purge_list(purge.payload, PurgeFormat.ZLIB) == {
        SERVER_PROPS: {"/lamp/level", "/info/label"}
    }
    assert sorted(values, key=lambda p: p.topic) == [
        DevicePublish(REALM, device, f"{base}/{SERVER_PROPS}/info/label", bson_value("hall"), 2),
        DevicePublish(REALM, device, f"{base}/{SERVER_PROPS}/lamp/level", bson_value(2.0), 2),
    ]
    await ingestor.flush()
    stored = await storage.devices.get(REALM, device)
    assert stored is not None and not stored.pending_empty_cache
    assert (stored.total_received_msgs, stored.total_received_bytes) == (1, 1 + 11)


async def test_empty_cache_with_nothing_stored_still_sends_a_purge_list(
    ingestor: Ingestor, publish: MessageFactory
) -> None:
    outcome = await process_one(ingestor, publish("/control/emptyCache", b"1"))
    (purge,) = outcome.publishes
    assert purge.payload[:4] == b"\x00\x00\x00\x00" and zlib.decompress(purge.payload[4:]) == b""


async def test_empty_cache_fails_on_an_interface_that_does_not_load(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    await ingestor.process(
        [publish("", f"{SERVER_PROPS}:2:0;org.astraea.test.Missing:1:0".encode())]
    )
    outcome = await process_one(ingestor, publish("/control/emptyCache", b"1"))
    assert outcome.error is not None
    assert outcome.error.name is ErrorName.INTERFACE_LOADING_FAILED and outcome.disconnect
    assert outcome.error.metadata["interface"] == '"org.astraea.test.Missing"'
    assert outcome.publishes == ()
    await ingestor.flush()
    stored = await storage.devices.get(REALM, device)
    assert stored is not None and stored.pending_empty_cache
    assert stored.total_received_msgs == 1  # the introspection only


async def test_producer_purge_unsets_unlisted_device_properties(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    await ingestor.process(
        [
            publish(f"/{DEVICE_PROPS}/lamp/enabled", bson_value(True)),
            publish(f"/{DEVICE_PROPS}/desk/enabled", bson_value(False)),
            publish(f"/{DEVICE_PROPS}/config/name", bson_value("dev")),
            publish(f"/{VALUES}/a/value", bson_value(1.0)),
        ]
    )
    await storage.values.apply(
        [PropertyWrite(REALM, device, SERVER_PROPS, 2, "/lamp/level", 2.0, T0)]
    )
    payload = sdk_purge(
        f"{DEVICE_PROPS}/lamp/enabled", f"{DEVICE_PROPS}/config/name", "org.x.Other/a", "junk"
    )
    outcome = await process_one(ingestor, publish("/control/producer/properties", payload))

    assert outcome.accepted
    assert outcome.events == (
        PropertyChanged(REALM, device, T0, DEVICE_PROPS, 0, "/desk/enabled", False, None),
    )
    kept = await storage.values.list_properties(REALM, device, DEVICE_PROPS, 0)
    assert [p.path for p in kept] == ["/config/name", "/lamp/enabled"]
    assert len(await storage.values.list_properties(REALM, device, SERVER_PROPS, 2)) == 1
    await ingestor.flush()
    stored = await storage.devices.get(REALM, device)
    assert stored is not None
    assert stored.total_received_msgs == 5
    data_bytes = sum(use.exchanged_bytes for use in stored.introspection.values())
    assert stored.total_received_bytes - data_bytes == len(payload) + 20


async def test_sdk_connection_burst_in_one_batch(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    """What the official SDK sends after CONNACK, with a property it no longer holds stored."""
    await ingestor.process([publish(f"/{DEVICE_PROPS}/old/enabled", bson_value(True))])
    introspection = f"{VALUES}:1:0;{DEVICE_PROPS}:0:1;{SERVER_PROPS}:2:0"
    outcomes = await ingestor.process(
        [
            connected(device, T0),
            publish("", introspection.encode()),
            publish("/control/emptyCache", b"1"),
            publish(f"/{DEVICE_PROPS}/lamp/enabled", bson_value(True)),
            publish("/control/producer/properties", sdk_purge(f"{DEVICE_PROPS}/lamp/enabled")),
            publish(f"/{VALUES}/a/value", bson_value(1.0)),
        ]
    )
    assert all(outcome.accepted for outcome in outcomes)
    kept = await storage.values.list_properties(REALM, device, DEVICE_PROPS, 0)
    assert [(p.path, p.value) for p in kept] == [("/lamp/enabled", True)]


async def test_sdk_purge_with_nothing_cached_unsets_everything(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    await ingestor.process([publish(f"/{DEVICE_PROPS}/lamp/enabled", bson_value(True))])
    await ingestor.process([publish("/control/producer/properties", sdk_purge())])
    assert await storage.values.list_properties(REALM, device, DEVICE_PROPS, 0) == []


async def test_plaintext_capability_changes_both_purge_lists(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    capabilities = bson.encode({"purge_properties_compression_format": "plaintext"})
    await storage.values.apply(
        [PropertyWrite(REALM, device, SERVER_PROPS, 2, "/info/label", "x", T0)]
    )
    outcomes = await ingestor.process(
        [
            publish("/capabilities", capabilities),
            publish(f"/{DEVICE_PROPS}/lamp/enabled", bson_value(True)),
            publish("/control/producer/properties", f"{DEVICE_PROPS}/lamp/enabled".encode()),
            publish("/control/emptyCache", b"1"),
        ]
    )
    assert all(outcome.accepted for outcome in outcomes)
    assert outcomes[3].publishes[0].payload == f"{SERVER_PROPS}/info/label".encode()
    assert len(await storage.values.list_properties(REALM, device, DEVICE_PROPS, 0)) == 1


async def test_minor_update_is_picked_up_after_the_cache_ttl(
    ingestor: Ingestor, storage: Storage, publish: MessageFactory, clock: Clock
) -> None:
    message = publish(f"/{VALUES}/a/extra", bson_value(1.0))
    outcome = await process_one(ingestor, message)
    assert outcome.error is not None and outcome.error.name is ErrorName.MAPPING_NOT_FOUND

    document = dict(INTERFACES[0], version_minor=1)
    document["mappings"] = [*document["mappings"], {"endpoint": "/%{s}/extra", "type": "double"}]
    await storage.interfaces.replace(REALM, parse_interface(document))
    clock.advance(0.5)
    assert not (await process_one(ingestor, message)).accepted  # still cached
    clock.advance(0.6)
    assert (await process_one(ingestor, message)).accepted


async def test_new_minor_in_introspection_reloads_the_interface_at_once(
    ingestor: Ingestor, storage: Storage, publish: MessageFactory
) -> None:
    message = publish(f"/{VALUES}/a/extra", bson_value(1.0))
    assert not (await process_one(ingestor, message)).accepted
    document = dict(INTERFACES[0], version_minor=1)
    document["mappings"] = [*document["mappings"], {"endpoint": "/%{s}/extra", "type": "double"}]
    await storage.interfaces.replace(REALM, parse_interface(document))
    outcomes = await ingestor.process([publish("", f"{VALUES}:1:1".encode()), message])
    assert all(outcome.accepted for outcome in outcomes)


async def test_traffic_counters(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory
) -> None:
    payloads = [bson_value(float(i)) for i in range(3)]
    await ingestor.process([publish(f"/{VALUES}/a/value", p) for p in payloads])
    await ingestor.process([publish(f"/{OBJECTS}/kitchen", bson_value({"hum": 1}))])
    await ingestor.flush()
    stored = await storage.devices.get(REALM, device)
    assert stored is not None
    values_bytes = sum(len(p) + len(VALUES) + len("/a/value") for p in payloads)
    objects_bytes = len(bson_value({"hum": 1})) + len(OBJECTS) + len("/kitchen")
    use = stored.introspection[VALUES]
    assert (use.exchanged_msgs, use.exchanged_bytes) == (3, values_bytes)
    use = stored.introspection[OBJECTS]
    assert (use.exchanged_msgs, use.exchanged_bytes) == (1, objects_bytes)
    assert (stored.total_received_msgs, stored.total_received_bytes) == (
        4,
        values_bytes + objects_bytes,
    )


async def test_messages_of_unknown_devices_are_dropped(
    ingestor: Ingestor, storage: Storage, publish: MessageFactory
) -> None:
    stranger = "AAAAAAAAAAAAAAAAAAAAAA"
    outcomes = await ingestor.process(
        [
            connected(stranger, T0),
            publish(f"/{VALUES}/a/value", bson_value(1.0), device_id=stranger),
            publish("/control/emptyCache", b"1", device_id=stranger),
            disconnected(stranger, T0),
        ]
    )
    assert all(o.accepted and not o.events and not o.publishes for o in outcomes)
    assert await storage.devices.get(REALM, stranger) is None


async def test_traffic_is_written_every_interval_and_at_disconnection(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory, clock: Clock
) -> None:
    async def total() -> int:
        stored = await storage.devices.get(REALM, device)
        assert stored is not None
        return stored.total_received_msgs

    await ingestor.process([publish(f"/{VALUES}/a/value", bson_value(1.0))])
    clock.advance(0.5)
    await ingestor.process([publish(f"/{VALUES}/a/value", bson_value(2.0))])
    assert await total() == 0
    clock.advance(0.5)
    await ingestor.process([publish(f"/{VALUES}/a/value", bson_value(3.0))])
    assert await total() == 3
    await ingestor.process(
        [publish(f"/{VALUES}/a/value", bson_value(4.0)), disconnected(device, clock.now)]
    )
    assert await total() == 4
