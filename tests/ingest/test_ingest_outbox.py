"""Trigger deliveries are queued in the same commit as the values that fire them (the outbox):
after `process` returns they are in storage, in the order ingestion saw the events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from ingest_support import DEVICE_PROPS, REALM, VALUES, Clock, MessageFactory, bson_value
from prometheus_client import CollectorRegistry

from astraea.core.simple_event_codec import decode_simple_event
from astraea.core.trigger_events import IncomingData, PathCreated, ValueChange
from astraea.core.triggers import parse_trigger
from astraea.ingest import DeviceMessage, Ingestor, Registered
from astraea.ingest.trigger_matching import TriggerMatcher
from astraea.storage.base import NewDelivery, PropertyChange, PropertyWrite, Storage


async def install(storage: Storage, name: str, *simple: dict[str, Any]) -> None:
    doc = {
        "name": name,
        "action": {"http_url": "http://127.0.0.1:9/hook", "http_method": "post"},
        "simple_triggers": list(simple),
    }
    await storage.triggers.install(REALM, parse_trigger(doc, realm=REALM))


def data(on: str, interface: str, major: int) -> dict[str, Any]:
    return {
        "type": "data_trigger",
        "on": on,
        "interface_name": interface,
        "interface_major": major,
        "match_path": "/*",
        "value_match_operator": "*",
    }


@pytest.fixture
def matching(storage: Storage, clock: Clock) -> Ingestor:
    return Ingestor(storage, clock, matcher=TriggerMatcher(storage, CollectorRegistry()))


async def stored_events(storage: Storage) -> list[object]:
    rows = await storage.delivery_queue.fetch(REALM, "@default", limit=100)
    return [decode_simple_event(row.event).event for row in rows]


async def test_deliveries_are_stored_with_the_batch_in_event_order(
    storage: Storage, matching: Ingestor, publish: MessageFactory
) -> None:
    await install(storage, "incoming", data("incoming_data", VALUES, 1))
    await install(storage, "changes", data("value_change", DEVICE_PROPS, 0))
    await install(storage, "created", data("path_created", DEVICE_PROPS, 0))

    outcomes = await matching.process(
        [
            publish(f"/{VALUES}/s1/value", bson_value(1.5)),
            publish(f"/{DEVICE_PROPS}/lamp/enabled", bson_value(True)),
            publish(f"/{DEVICE_PROPS}/lamp/enabled", bson_value(True)),  # no change: no event
        ]
    )

    assert await stored_events(storage) == [
        IncomingData(VALUES, "/s1/value", 1.5),
        ValueChange(DEVICE_PROPS, "/lamp/enabled", None, True),
        PathCreated(DEVICE_PROPS, "/lamp/enabled", True),
    ]
    rows = await storage.delivery_queue.fetch(REALM, "@default", limit=100)
    assert [len(outcome.queued) for outcome in outcomes] == [1, 2, 0]
    assert [row for outcome in outcomes for _, row in outcome.queued] == rows


async def test_values_and_deliveries_commit_together_or_not_at_all(
    storage: Storage, device: str, clock: Clock
) -> None:
    write = PropertyWrite(REALM, device, DEVICE_PROPS, 0, "/lamp/enabled", True, clock.now)

    def failing(changes: Sequence[tuple[PropertyChange, ...]]) -> list[NewDelivery]:
        assert [change.path for made in changes for change in made] == ["/lamp/enabled"]
        raise RuntimeError("matching failed")

    with pytest.raises(RuntimeError, match="matching failed"):
        await storage.values.apply_and_queue([write], failing)
    assert await storage.values.list_properties(REALM, device, DEVICE_PROPS, 0) == []
    assert await storage.delivery_queue.queues() == []


async def test_registration_fires_device_registered(
    storage: Storage, matching: Ingestor, device: str, clock: Clock
) -> None:
    await install(storage, "registered", {"type": "device_trigger", "on": "device_registered"})
    [outcome] = await matching.process([DeviceMessage(REALM, device, Registered(), clock.now)])
    assert len(outcome.queued) == 1
    assert len(await stored_events(storage)) == 1
