"""ValueRepository contract: properties, datastream samples, path registry, retention."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from astraea.core.device_id import random_device_id
from astraea.core.interface import Aggregation
from astraea.storage.base import (
    DatastreamSample,
    NewDelivery,
    PropertyChange,
    PropertyPurge,
    PropertyWrite,
    Storage,
    StoredProperty,
    StoredSample,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
IFACE = "org.example.Values"
OBJ = "org.example.Objects"
PROPS = "org.example.Props"
IND = Aggregation.INDIVIDUAL
OBJECT = Aggregation.OBJECT


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
async def device(storage: Storage, realm: str) -> str:
    device_id = random_device_id()
    await storage.devices.register(realm, device_id, "hash", {}, T0)
    return device_id


def sample(
    device: str,
    path: str,
    value: object,
    value_ts: datetime,
    reception: datetime | None = None,
    *,
    expires_at: datetime | None = None,
    interface: str = IFACE,
    aggregation: Aggregation = IND,
) -> DatastreamSample:
    return DatastreamSample(
        "test",
        device,
        interface,
        0,
        path,
        value,
        value_ts,
        reception or value_ts,
        expires_at,
        aggregation,
    )


def prop(device: str, path: str, value: object | None, when: datetime = T0) -> PropertyWrite:
    return PropertyWrite("test", device, PROPS, 1, path, value, when)


async def test_property_set_change_and_unset_report_changes(storage: Storage, device: str) -> None:
    changes = await storage.values.apply(
        [
            prop(device, "/a", 1.5),
            prop(device, "/a", 1.5, at(1)),
            prop(device, "/a", 2.5, at(2)),
            prop(device, "/b", "x"),
            prop(device, "/b", None),
            prop(device, "/never", None),
        ]
    )
    assert changes == [
        (PropertyChange(PROPS, 1, "/a", None, 1.5),),
        (),
        (PropertyChange(PROPS, 1, "/a", 1.5, 2.5),),
        (PropertyChange(PROPS, 1, "/b", None, "x"),),
        (PropertyChange(PROPS, 1, "/b", "x", None),),
        (),
    ]
    assert await storage.values.list_properties("test", device, PROPS, 1) == [
        StoredProperty("/a", 2.5, at(2))
    ]


async def test_property_values_keep_their_types(storage: Storage, device: str) -> None:
    values: dict[str, object] = {
        "/blob": b"\x00\x01",
        "/when": at(0.123),
        "/long": 2**40,
        "/list": ["a", "b"],
        "/flag": False,
    }
    await storage.values.apply([prop(device, path, value) for path, value in values.items()])
    stored = await storage.values.list_properties("test", device, PROPS, 1)
    assert {item.path: item.value for item in stored} == values
    assert [item.path for item in stored] == sorted(values)


async def test_purge_removes_unlisted_properties(storage: Storage, device: str) -> None:
    await storage.values.apply(
        [prop(device, "/a", 1), prop(device, "/b", 2), prop(device, "/c", 3)]
    )
    changes = await storage.values.apply(
        [PropertyPurge("test", device, PROPS, 1, frozenset({"/b", "/unknown"}))]
    )
    assert changes == [
        (PropertyChange(PROPS, 1, "/a", 1, None), PropertyChange(PROPS, 1, "/c", 3, None))
    ]
    assert [p.path for p in await storage.values.list_properties("test", device, PROPS, 1)] == [
        "/b"
    ]


async def test_writes_apply_in_order(storage: Storage, device: str) -> None:
    """A set after a purge in the same batch survives it."""
    await storage.values.apply(
        [
            prop(device, "/a", 1),
            PropertyPurge("test", device, PROPS, 1, frozenset()),
            prop(device, "/b", 2),
        ]
    )
    stored = await storage.values.list_properties("test", device, PROPS, 1)
    assert [(p.path, p.value) for p in stored] == [("/b", 2)]


async def test_samples_filters_and_order(storage: Storage, device: str) -> None:
    await storage.values.apply([sample(device, "/s", float(i), at(i)) for i in range(10)])
    now = at(100)

    async def values(**query: object) -> list[object]:
        found = await storage.values.samples("test", device, IFACE, 0, "/s", IND, now=now, **query)
        return [s.value for s in found]

    assert await values() == [float(i) for i in range(10)]
    assert await values(since=at(7)) == [7.0, 8.0, 9.0]
    assert await values(since_after=at(7)) == [8.0, 9.0]
    assert await values(to=at(2)) == [0.0, 1.0]
    assert await values(since=at(2), to=at(5), limit=2) == [2.0, 3.0]
    assert await values(limit=3) == [9.0, 8.0, 7.0]  # newest first without since
    assert await values(limit=3, to=at(5)) == [4.0, 3.0, 2.0]
    assert await values(since=at(20)) == []


async def test_equal_timestamps_keep_reception_order(storage: Storage, device: str) -> None:
    """Sub-millisecond receptions of the same value timestamp stay ordered."""
    receptions = [at(1) + timedelta(microseconds=i) for i in range(5)]
    await storage.values.apply(
        [sample(device, "/s", i, at(0), receptions[i]) for i in (3, 0, 4, 1, 2)]
    )
    found = await storage.values.samples("test", device, IFACE, 0, "/s", IND, now=at(10))
    assert [s.value for s in found] == [0, 1, 2, 3, 4]
    assert [s.reception_timestamp for s in found] == receptions
    newest = await storage.values.samples("test", device, IFACE, 0, "/s", IND, now=at(10), limit=2)
    assert [s.value for s in newest] == [4, 3]


async def test_object_samples(storage: Storage, device: str) -> None:
    objects = [{"temp": 20.5, "hum": 40}, {"temp": 21.0}]
    await storage.values.apply(
        [
            sample(device, "/room", objects[i], at(i), interface=OBJ, aggregation=OBJECT)
            for i in range(2)
        ]
    )
    found = await storage.values.samples("test", device, OBJ, 0, "/room", OBJECT, now=at(10))
    assert found == [StoredSample("/room", objects[i], at(i), at(i)) for i in range(2)]
    assert await storage.values.samples("test", device, IFACE, 0, "/room", IND, now=at(10)) == []


async def test_last_samples_per_path(storage: Storage, device: str) -> None:
    await storage.values.apply(
        [
            sample(device, "/a", 1, at(1)),
            sample(device, "/b", 2, at(5)),
            sample(device, "/a", 3, at(3)),
            sample(device, "/a", 4, at(2)),  # older value timestamp, received later
            sample(device, "/b", {"k": 5}, at(0), interface=OBJ, aggregation=OBJECT),
        ]
    )
    last = await storage.values.last_samples("test", device, IFACE, 0, IND, now=at(10))
    assert [(s.path, s.value, s.value_timestamp) for s in last] == [
        ("/a", 3, at(3)),
        ("/b", 2, at(5)),
    ]


async def test_many_samples_in_one_batch(storage: Storage, device: str) -> None:
    batch = [sample(device, f"/s{i % 7}", i, at(i / 1000)) for i in range(1234)]
    await storage.values.apply(batch)
    total = 0
    for path in range(7):
        total += len(
            await storage.values.samples("test", device, IFACE, 0, f"/s{path}", IND, now=at(10))
        )
    assert total == 1234
    assert len(await storage.values.last_samples("test", device, IFACE, 0, IND, now=at(10))) == 7


async def test_expired_samples_are_hidden_then_purged(storage: Storage, device: str) -> None:
    await storage.values.apply(
        [
            sample(device, "/short", 1, at(0), expires_at=at(60)),
            sample(device, "/forever", 2, at(0)),
            sample(device, "/mixed", 3, at(0), expires_at=at(60)),
            sample(device, "/mixed", 4, at(1), expires_at=at(120)),
            sample(
                device, "/o", {"k": 1}, at(0), expires_at=at(60), interface=OBJ, aggregation=OBJECT
            ),
        ]
    )

    async def paths(now: datetime) -> list[tuple[str, object]]:
        last = await storage.values.last_samples("test", device, IFACE, 0, IND, now=now)
        return [(s.path, s.value) for s in last]

    assert await paths(at(59)) == [("/forever", 2), ("/mixed", 4), ("/short", 1)]
    assert await paths(at(60)) == [("/forever", 2), ("/mixed", 4)]
    mixed = await storage.values.samples("test", device, IFACE, 0, "/mixed", IND, now=at(60))
    assert [s.value for s in mixed] == [4]
    assert await storage.values.samples("test", device, OBJ, 0, "/o", OBJECT, now=at(60)) == []

    # Samples /short, /mixed=3 and /o, and the paths /short and /o expired at 60.
    assert await storage.values.purge_expired(at(60)) == 5
    assert await paths(at(0)) == [("/forever", 2), ("/mixed", 4)]
    # /mixed's path lives as long as its longest-lived sample.
    assert await storage.values.purge_expired(at(120)) == 2
    assert await paths(at(0)) == [("/forever", 2)]


async def test_path_kept_forever_once_a_sample_is(storage: Storage, device: str) -> None:
    await storage.values.apply([sample(device, "/p", 1, at(0))])
    await storage.values.apply([sample(device, "/p", 2, at(1), expires_at=at(60))])
    assert await storage.values.purge_expired(at(61)) == 1
    last = await storage.values.last_samples("test", device, IFACE, 0, IND, now=at(61))
    assert [s.value for s in last] == [1]


async def test_delete_interface_values(storage: Storage, device: str) -> None:
    await storage.values.apply(
        [
            sample(device, "/a", 1, at(0)),
            sample(device, "/b", 2, at(0), interface="org.example.Kept"),
        ]
    )
    await storage.values.apply([PropertyWrite("test", device, IFACE, 0, "/p", 1, T0)])
    await storage.values.delete_interface_values("test", device, IFACE, 0)
    assert await storage.values.last_samples("test", device, IFACE, 0, IND, now=at(1)) == []
    assert await storage.values.list_properties("test", device, IFACE, 0) == []
    kept = await storage.values.last_samples("test", device, "org.example.Kept", 0, IND, now=at(1))
    assert [s.value for s in kept] == [2]


async def test_a_failing_batch_writes_nothing(storage: Storage, device: str) -> None:
    unknown = random_device_id()  # not registered: its rows break the foreign key
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await storage.values.apply(
            [prop(device, "/a", 1), sample(device, "/s", 1, at(0)), sample(unknown, "/s", 1, at(0))]
        )
    assert await storage.values.list_properties("test", device, PROPS, 1) == []
    assert await storage.values.samples("test", device, IFACE, 0, "/s", IND, now=at(1)) == []


def new_delivery(device: str, n: int, realm: str = "test") -> NewDelivery:
    return NewDelivery(
        realm=realm,
        policy="@default",
        device_id=device,
        trigger_id=uuid.UUID(int=1),
        simple_trigger_id=uuid.UUID(int=2),
        event_type="value_change_event",
        event=bytes([n]),
        enqueued_at=n,
        expires_at=None,
    )


async def test_apply_and_queue_derives_deliveries_from_the_changes(
    storage: Storage, device: str
) -> None:
    seen: list[list[tuple[PropertyChange, ...]]] = []

    def deliveries_for(changes: Sequence[tuple[PropertyChange, ...]]) -> list[NewDelivery]:
        seen.append(list(changes))
        return [new_delivery(device, n) for n, made in enumerate(changes) if made]

    writes = [sample(device, "/s1/value", 1.0, at(0)), prop(device, "/a/enabled", True)]
    changes, queued = await storage.values.apply_and_queue(writes, deliveries_for)
    assert changes == [(), (PropertyChange(PROPS, 1, "/a/enabled", None, True),)]
    assert seen == [changes]
    stored = await storage.delivery_queue.fetch("test", "@default", limit=10)
    assert [row.event for row in stored] == [bytes([1])]
    assert queued == stored

    # Without writes: the deliveries alone, and nothing at all when there are none.
    seen.clear()
    _, queued = await storage.values.apply_and_queue([], lambda _: [new_delivery(device, 7)])
    assert [row.event for row in queued if row is not None] == [bytes([7])]
    assert await storage.values.apply_and_queue([], deliveries_for) == ([], [])
    assert seen == [[]]


async def test_apply_and_queue_is_one_transaction(storage: Storage, device: str) -> None:
    def failing(changes: Sequence[tuple[PropertyChange, ...]]) -> list[NewDelivery]:
        raise RuntimeError("matching failed")

    with pytest.raises(RuntimeError, match="matching failed"):
        await storage.values.apply_and_queue(
            [prop(device, "/a/enabled", True), sample(device, "/s1/value", 1.0, at(0))], failing
        )
    assert await storage.values.list_properties("test", device, PROPS, 1) == []
    assert await storage.values.samples("test", device, IFACE, 0, "/s1/value", IND, now=at(1)) == []
    assert await storage.delivery_queue.queues() == []
