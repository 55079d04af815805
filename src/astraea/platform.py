"""Runs every component of the platform in one process (`astraea up`)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from astraea.api.app import create_app
from astraea.api.context import ApiContext, ApiSettings
from astraea.bus.inproc import GroupCommitQueue
from astraea.config import Settings
from astraea.device_gateway import DeviceGateway
from astraea.ingest.ingestor import Ingestor
from astraea.ingest.messages import DeviceMessage, Outcome
from astraea.ingest.metrics import IngestMetrics
from astraea.pairing.ca import CA_CERT_FILE, CertificateAuthority
from astraea.storage import open_storage
from astraea.storage.base import Storage
from astraea.tls_material import ensure_keypair, ensure_server_certificate
from astraea.transport.commands import LocalDeviceCommands
from astraea.transport.server import MqttServer
from astraea.transport.settings import TransportSettings
from astraea.triggers.directory import StorageDirectory
from astraea.triggers.engine import EngineSettings, TriggerEngine
from astraea.triggers.evaluator import TriggerEvaluator
from astraea.triggers.metrics import TriggerMetrics

log = logging.getLogger("astraea")


class _EmbeddedHttpServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the platform decides when every part stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(slots=True)
class KeyPaths:
    housekeeping_public_key: Path
    housekeeping_private_key: Path | None
    mqtt_tls_cert: Path
    mqtt_tls_key: Path


@dataclass
class Platform:
    settings: Settings
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    storage: Storage | None = None
    keys: KeyPaths | None = None
    ca: CertificateAuthority | None = None
    api_context: ApiContext | None = None
    commands: LocalDeviceCommands | None = None
    http_port: int | None = None
    mqtt: MqttServer | None = None
    triggers: TriggerEngine | None = None
    _evaluator: TriggerEvaluator | None = None
    _ingestor: Ingestor | None = None
    _ingest_queue: GroupCommitQueue[DeviceMessage, Outcome] | None = None
    _expiry_sweeper: asyncio.Task[None] | None = None
    _http: _EmbeddedHttpServer | None = None
    _http_task: asyncio.Task[None] | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def is_ready(self) -> bool:
        return (
            self.storage is not None
            and self.mqtt is not None
            and self._http is not None
            and self._http.started
            and not self._stopping.is_set()
        )

    async def start(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.keys = self._prepare_keys()
        self.ca = CertificateAuthority.load_or_create(settings.data_dir / "ca")
        self.storage = await open_storage(settings.database_url)
        # No device connection outlives the process that held it.
        await self.storage.devices.clear_stale_connections()
        self._evaluator = await self._start_triggers()
        await self._start_device_pipeline(settings.data_dir / "ca" / CA_CERT_FILE)
        self._expiry_sweeper = asyncio.create_task(self._sweep_expired_samples())
        self.api_context = context = ApiContext(
            storage=self.storage,
            settings=ApiSettings(
                housekeeping_public_key_pem=self.keys.housekeeping_public_key.read_text(),
                broker_url=self.broker_url,
                disable_auth=settings.disable_auth,
                enable_realm_deletion=settings.enable_realm_deletion,
                appengine_max_results_limit=settings.appengine_max_results,
            ),
            ca=self.ca,
            commands=self.commands,
            on_device_registered=self._evaluator.device_registered,
        )
        app = create_app(context, registry=self.registry, is_ready=self.is_ready)
        sock = socket.create_server((settings.host, settings.http_port), reuse_port=False)
        self.http_port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._http = _EmbeddedHttpServer(config)
        self._http_task = asyncio.create_task(self._http.serve(sockets=[sock]))
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    async def _start_triggers(self) -> TriggerEvaluator:
        """The trigger engine, then the evaluator that feeds it from ingestion and Pairing."""
        assert self.storage is not None
        self.triggers = TriggerEngine(
            self.storage.delivery_queue,
            StorageDirectory(self.storage),
            TriggerMetrics(self.registry),
            EngineSettings(amqp_url=self.settings.amqp_url),
        )
        await self.triggers.start()
        evaluator = TriggerEvaluator(self.storage, self.triggers)
        await evaluator.start()
        return evaluator

    async def _start_device_pipeline(self, ca_file: Path) -> None:
        """Devices → MQTT transport → group-commit queue → ingestion → storage."""
        assert self.storage is not None and self.keys is not None
        self._ingestor = Ingestor(self.storage, clock=_utc_now)
        metrics = IngestMetrics(self.registry)
        self._ingest_queue = GroupCommitQueue(metrics.timed(self._ingestor.process))
        self._ingest_queue.start()
        assert self._evaluator is not None
        gateway = DeviceGateway(
            self.storage.devices,
            self._ingest_queue.submit,
            on_outcome=self._evaluator.on_outcome,
            metrics=metrics,
        )
        self.mqtt = MqttServer(
            gateway,
            TransportSettings(
                ca_file=ca_file,
                cert_file=self.keys.mqtt_tls_cert,
                key_file=self.keys.mqtt_tls_key,
                host=self.settings.host,
                port=self.settings.mqtt_port,
            ),
        )
        await self.mqtt.start()
        gateway.commands = self.commands = LocalDeviceCommands(self.mqtt)

    async def _sweep_expired_samples(self) -> None:
        """Reads already hide expired samples; this reclaims their space in the background."""
        while True:
            await asyncio.sleep(self.settings.expiry_sweep_seconds)
            assert self.storage is not None
            try:
                removed = await self.storage.values.purge_expired(_utc_now())
            except Exception:  # a failed sweep is retried at the next interval
                log.exception("could not delete expired samples")
                continue
            if removed:
                log.info("deleted %d expired samples", removed)

    @property
    def broker_url(self) -> str:
        """What devices are told to connect to: the configured URL, else the bound port."""
        if self.settings.broker_url:
            return self.settings.broker_url
        port = self.mqtt.port if self.mqtt is not None else self.settings.mqtt_port
        return f"mqtts://localhost:{port}"

    def _prepare_keys(self) -> KeyPaths:
        settings = self.settings
        keys_dir = settings.data_dir / "keys"
        private: Path | None = None
        public = settings.housekeeping_public_key
        if public is None:
            private, public = ensure_keypair(keys_dir, "housekeeping")
        cert, key = settings.mqtt_tls_cert, settings.mqtt_tls_key
        if cert is None or key is None:
            cert, key = ensure_server_certificate(keys_dir / "broker")
        return KeyPaths(public, private, cert, key)

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        """Stops taking requests, then devices (their last messages still get stored), then
        ingestion, and closes storage last."""
        self._stopping.set()
        if self._expiry_sweeper is not None:
            self._expiry_sweeper.cancel()
            await asyncio.gather(self._expiry_sweeper, return_exceptions=True)
            self._expiry_sweeper = None
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            await self._http_task
            self._http = self._http_task = None
        if self.mqtt is not None:
            await self.mqtt.close()
            self.mqtt = None
        if self._ingest_queue is not None:
            await self._ingest_queue.stop()
            self._ingest_queue = None
        if self._ingestor is not None:
            await self._ingestor.flush()
            self._ingestor = None
        if self._evaluator is not None:  # evaluates what ingestion reported last
            await self._evaluator.stop()
            self._evaluator = None
        if self.triggers is not None:  # stores what was submitted, for the next start
            await self.triggers.stop()
            self.triggers = None
        if self.storage is not None:
            await self.storage.close()
            self.storage = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def run_until_signalled(
    platform: Platform, on_started: Callable[[Platform], None] | None = None
) -> None:
    """Starts the platform, serves until SIGINT/SIGTERM, then shuts down cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, platform.request_stop)
    try:
        await platform.start()
        tune_garbage_collector()
        if on_started is not None:
            on_started(platform)
        await platform.wait_stopped()
    finally:
        await platform.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def tune_garbage_collector() -> None:
    """Moves what start-up allocated out of the collector's reach and makes collections rarer.

    Ingestion allocates many short-lived objects; with the default thresholds full collections
    over every long-lived object paused the loop for 90-135 ms every few seconds, which set the
    ingest p99 (bench/RESULTS.md). Reference cycles are still collected, just less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Runs `main` on uvloop where it is installed (faster sockets and TLS), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
