"""Stopping the engine and storage while retries are pending, then resuming from the file."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from trigger_support import (
    DEVICE,
    Directory,
    Receiver,
    event_for,
    eventually,
    eventually_async,
    http_trigger,
    new_delivery,
)

from astraea.bus.inproc import InprocBus
from astraea.bus.messages import DeliveriesQueued
from astraea.core.trigger_events import DeviceConnected, IncomingData, SimpleEvent
from astraea.core.trigger_policies import Policy, parse_policy
from astraea.core.triggers import DeviceTrigger, DeviceTriggerEvent, Trigger
from astraea.storage import open_storage
from astraea.storage.base import Realm, Storage
from astraea.triggers.directory import StorageDirectory
from astraea.triggers.engine import EngineSettings, TriggerDirectory, TriggerEngine
from astraea.triggers.metrics import TriggerMetrics

# Long enough that the first retry is still pending when the engine stops.
SETTINGS = EngineSettings(retry_delay=1.0, max_retry_delay=1.0, http_timeout=2.0)


def policy(name: str, retry_times: int) -> Policy:
    return parse_policy(
        {
            "name": name,
            "maximum_capacity": 100,
            "retry_times": retry_times,
            "error_handlers": [{"on": "server_error", "strategy": "retry"}],
        }
    )


async def running(
    storage: Storage, directory: TriggerDirectory, bus: InprocBus
) -> tuple[TriggerEngine, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = TriggerMetrics(registry)
    engine = TriggerEngine(storage.delivery_queue, directory, metrics, bus, "engine", SETTINGS)
    await engine.start()
    return engine, registry


async def submit(
    storage: Storage, bus: InprocBus, trigger: Any, policy: Policy, event: SimpleEvent
) -> None:
    """As ingestion does: stored, then announced (the directory is left alone, so a trigger
    it does not know is one deleted since)."""
    (row,) = await storage.delivery_queue.enqueue([new_delivery(trigger, policy, event)])
    assert row is not None
    await bus.broadcast(DeliveriesQueued("test", policy.name, (row,)))


async def first_attempt_recorded(storage: Storage, queue: str) -> None:
    async def recorded() -> bool:
        rows = await storage.delivery_queue.fetch("test", queue, limit=1)
        return bool(rows) and rows[0].attempts == 1

    await eventually_async(recorded)


def queues_empty(storage: Storage) -> Callable[[], Awaitable[bool]]:
    async def empty() -> bool:
        return await storage.delivery_queue.queues() == []

    return empty


def value(n: int) -> IncomingData:
    return IncomingData("org.example.Counter", "/n", n)


async def test_pending_retries_resume_after_restart(
    tmp_path: Path, receiver: Receiver, bus: InprocBus
) -> None:
    url = f"sqlite://{tmp_path / 'astraea.db'}"
    directory = Directory()
    recovering = directory.add(http_trigger(receiver.respond("/recovers", 503), name="recovering"))
    down = directory.add(http_trigger(receiver.respond("/down", 503), name="down"))
    deleted = http_trigger(receiver.respond("/deleted", 200), name="deleted")  # gone after restart
    policy_a, policy_b = policy("a", retry_times=5), policy("b", retry_times=2)
    directory.policies[("test", "a")] = policy_a
    directory.policies[("test", "b")] = policy_b

    storage = await open_storage(url)
    await storage.realms.create(Realm(name="test", jwt_public_key_pem="pem"))
    engine, _ = await running(storage, directory, bus)
    await submit(storage, bus, recovering, policy_a, event_for(recovering, value(0)))
    await submit(storage, bus, recovering, policy_a, event_for(recovering, value(1)))
    await submit(storage, bus, deleted, policy_a, event_for(deleted, value(99)))
    await submit(storage, bus, recovering, policy_a, event_for(recovering, value(2)))
    await submit(storage, bus, down, policy_b, event_for(down, value(0)))
    await first_attempt_recorded(storage, "a")
    await first_attempt_recorded(storage, "b")
    await engine.stop()
    await storage.close()

    # While stopped: the receiver recovers, and one trigger is deleted.
    receiver.respond("/recovers", 200)
    storage = await open_storage(url)
    try:
        assert [
            len(await storage.delivery_queue.fetch("test", q, limit=10)) for q in ("a", "b")
        ] == [4, 1]
        engine, registry = await running(storage, directory, bus)
        try:
            requests = await receiver.wait_for("/recovers", 4)
            assert [orjson.loads(r.body)["event"]["value"] for r in requests] == [0, 0, 1, 2]
            # The pending retry kept its backoff across the restart.
            assert requests[1].at - requests[0].at >= 0.9
            labels = {"realm": "test", "trigger": "down", "reason": "discarded"}
            await eventually(
                lambda: (
                    registry.get_sample_value("astraea_trigger_events_dropped_total", labels) == 1
                )
            )
            # retry_times=2 counts the attempt made before the restart: no third attempt.
            assert len(receiver.at("/down")) == 2
            missing = {
                "realm": "test",
                "trigger": str(deleted.trigger_id),
                "reason": "trigger_missing",
            }
            assert registry.get_sample_value("astraea_trigger_events_dropped_total", missing) == 1
            assert receiver.at("/deleted") == []
            await eventually_async(queues_empty(storage))
        finally:
            await engine.stop()
    finally:
        await storage.close()


async def test_resume_through_storage_directory(
    tmp_path: Path, receiver: Receiver, bus: InprocBus
) -> None:
    """The platform's directory: the trigger and policy are found in storage after restart."""
    url = f"sqlite://{tmp_path / 'astraea.db'}"
    storage = await open_storage(url)
    await storage.realms.create(Realm(name="test", jwt_public_key_pem="pem"))
    retrying = policy("stored", retry_times=3)
    await storage.policies.install("test", retrying)
    trigger = Trigger(
        name="stored_trigger",
        action=http_trigger(receiver.respond("/stored", 503)).action,
        simple_triggers=(DeviceTrigger(on=DeviceTriggerEvent.DEVICE_CONNECTED),),
        policy="stored",
    )
    installed = await storage.triggers.install("test", trigger)
    event = SimpleEvent(
        realm="test",
        device_id=DEVICE,
        timestamp_ms=1_700_000_000_000,
        simple_trigger_id=installed.simple_trigger_ids[0],
        parent_trigger_id=installed.trigger_id,
        event=DeviceConnected("10.0.0.1"),
    )
    engine, _ = await running(storage, StorageDirectory(storage), bus)
    await submit(storage, bus, installed.trigger, retrying, event)
    await first_attempt_recorded(storage, "stored")
    await engine.stop()
    await storage.close()

    receiver.respond("/stored", 200)
    storage = await open_storage(url)
    try:
        engine, registry = await running(storage, StorageDirectory(storage), bus)
        try:
            await receiver.wait_for("/stored", 2)
            labels = {"realm": "test", "trigger": "stored_trigger"}
            await eventually(
                lambda: (
                    registry.get_sample_value("astraea_trigger_events_delivered_total", labels) == 1
                )
            )
        finally:
            await engine.stop()
    finally:
        await storage.close()
