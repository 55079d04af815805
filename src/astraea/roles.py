"""The composition root: each role built from what its process shares (settings, storage,
bus, metrics registry, key material), and nothing else.

This is the only module that puts components together; components never hold each other's
objects and talk only through the bus and storage, so a role runs the same way next to the
others (`astraea up`) as in a process of its own (`astraea serve --role`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from astraea.api.app import create_app
from astraea.api.context import ApiContext, ApiSettings
from astraea.bus.base import DEVICE_MESSAGES, Bus, Subscription
from astraea.bus.device_commands import DeviceCommands
from astraea.config import Role, Settings
from astraea.core.sessions import MAX_QUEUED_MESSAGES
from astraea.ingest.ingestor import Ingestor
from astraea.ingest.metrics import IngestMetrics
from astraea.ingest.trigger_matching import TriggerMatcher
from astraea.ingest.worker import IngestWorker
from astraea.pairing.ca import CA_CERT_FILE, CertificateAuthority
from astraea.storage.base import Storage
from astraea.transport.gateway import DeviceGateway
from astraea.transport.node import TransportNode
from astraea.transport.server import MqttServer
from astraea.transport.settings import TransportSettings
from astraea.triggers.directory import StorageDirectory
from astraea.triggers.engine import EngineSettings, TriggerEngine
from astraea.triggers.metrics import TriggerMetrics

log = logging.getLogger("astraea")


@dataclass(slots=True)
class KeyPaths:
    housekeeping_public_key: Path
    housekeeping_private_key: Path | None
    mqtt_tls_cert: Path
    mqtt_tls_key: Path


@dataclass(slots=True)
class Shared:
    """What every role of one process is built from."""

    settings: Settings
    storage: Storage
    bus: Bus
    registry: CollectorRegistry
    keys: KeyPaths
    ca: CertificateAuthority
    commands: DeviceCommands
    process_id: str  # unique per process: names its leases and its bus consumers


class RunningRole(Protocol):
    def is_ready(self) -> bool: ...

    async def stop(self) -> None: ...


def process_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TransportRole:
    """The MQTT listener of a transport node, its command endpoint and its heartbeat."""

    def __init__(self, shared: Shared) -> None:
        settings = shared.settings
        self.node_name = settings.node_name or _default_node_name(settings)
        gateway = DeviceGateway(
            self.node_name,
            shared.storage.devices,
            shared.storage.sessions,
            shared.bus,
            DEVICE_MESSAGES,
            max_queued=MAX_QUEUED_MESSAGES,
        )
        self.server = MqttServer(
            gateway,
            TransportSettings(
                ca_file=settings.data_dir / "ca" / CA_CERT_FILE,
                cert_file=shared.keys.mqtt_tls_cert,
                key_file=shared.keys.mqtt_tls_key,
                host=settings.host,
                port=settings.mqtt_port,
            ),
            sessions=gateway,
        )
        self._node = TransportNode(
            self.node_name,
            self.server,
            shared.bus,
            DEVICE_MESSAGES,
            shared.storage.devices,
            shared.storage.nodes,
            shared.storage.sessions,
        )
        self._started = False

    async def start(self) -> None:
        await self._node.start()  # before any device: it cleans up after its previous life
        await self.server.start()
        self._started = True

    def is_ready(self) -> bool:
        return self._started

    async def stop(self) -> None:
        """Devices go first, while ingestion still takes their last messages."""
        if self._started:
            await self.server.close()
        await self._node.stop()
        self._started = False


class IngestRole:
    """An ingest worker on its share of the device stream, and the expired-sample sweep."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._matcher = TriggerMatcher(shared.storage, shared.registry)
        self._ingestor = Ingestor(shared.storage, clock=_utc_now, matcher=self._matcher)
        self._worker = IngestWorker(
            self._ingestor,
            self._matcher,
            shared.bus,
            shared.commands,
            IngestMetrics(shared.registry),
        )
        self._consumer: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._matcher.start()
        await self._worker.start()
        self._consumer = await self._shared.bus.consume(
            DEVICE_MESSAGES, self._worker.handle, on_taken=self._ingestor.forget_shard
        )
        self._sweeper = asyncio.create_task(self._sweep_expired_samples(), name="expiry sweep")

    def is_ready(self) -> bool:
        return self._consumer is not None

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        if self._consumer is not None:  # finishes the batch in hand
            await self._consumer.cancel()
            self._consumer = None
        await self._ingestor.flush()
        await self._worker.stop()
        await self._matcher.stop()

    async def _sweep_expired_samples(self) -> None:
        """Reads already hide expired samples; this reclaims their space in the background."""
        while True:
            await asyncio.sleep(self._shared.settings.expiry_sweep_seconds)
            try:
                removed = await self._shared.storage.values.purge_expired(_utc_now())
            except Exception:  # a failed sweep is retried at the next interval
                log.exception("could not delete expired samples")
                continue
            if removed:
                log.info("deleted %d expired samples", removed)


class TriggersRole:
    def __init__(self, shared: Shared) -> None:
        self.engine = TriggerEngine(
            shared.storage.delivery_queue,
            StorageDirectory(shared.storage),
            TriggerMetrics(shared.registry),
            shared.bus,
            owner=shared.process_id,
            settings=EngineSettings(amqp_url=shared.settings.amqp_url),
        )
        self._started = False

    async def start(self) -> None:
        await self.engine.start()
        self._started = True

    def is_ready(self) -> bool:
        return self._started

    async def stop(self) -> None:
        await self.engine.stop()
        self._started = False


class ApiRole:
    """The HTTP APIs; the process serves `app` on its HTTP port."""

    def __init__(self, shared: Shared, broker_url: str) -> None:
        settings = shared.settings
        self.context = ApiContext(
            storage=shared.storage,
            settings=ApiSettings(
                housekeeping_public_key_pem=shared.keys.housekeeping_public_key.read_text(),
                broker_url=broker_url,
                disable_auth=settings.disable_auth,
                enable_realm_deletion=settings.enable_realm_deletion,
                appengine_max_results_limit=settings.appengine_max_results,
            ),
            ca=shared.ca,
            bus=shared.bus,
            commands=shared.commands,
        )

    def app(self, registry: CollectorRegistry, is_ready: Callable[[], bool]) -> FastAPI:
        return create_app(self.context, registry=registry, is_ready=is_ready)

    def is_ready(self) -> bool:
        return True

    async def stop(self) -> None:
        return None


# The order roles start in: consumers before producers, so that nothing published in this
# process waits for a consumer that is not there yet; they stop in the reverse order.
START_ORDER = (Role.INGEST, Role.TRIGGERS, Role.TRANSPORT, Role.API)


def _default_node_name(settings: Settings) -> str:
    """Host name and MQTT port: stable across restarts, so a node that comes back cleans up
    after itself. A port chosen by the system (0) gets a unique suffix instead."""
    host = socket.gethostname()
    if settings.mqtt_port:
        return f"{host}:{settings.mqtt_port}"
    return f"{host}:{uuid.uuid4().hex[:8]}"
