"""One platform process: its storage, its bus, the roles it runs and its HTTP port.

`astraea up` runs every role here on SQLite and the in-process bus; `astraea serve --role`
runs some of them, usually on PostgreSQL and RabbitMQ. Every process answers `/health` and
`/metrics` on its HTTP port; only one running the `api` role serves the APIs there.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from astraea.api.app import create_app
from astraea.api.context import ApiContext
from astraea.bus import open_bus
from astraea.bus.base import Bus
from astraea.bus.device_commands import DeviceCommands
from astraea.config import ALL_ROLES, Role, Settings
from astraea.core.sessions import MAX_QUEUED_MESSAGES
from astraea.pairing.ca import CertificateAuthority
from astraea.roles import (
    START_ORDER,
    ApiRole,
    IngestRole,
    KeyPaths,
    RunningRole,
    Shared,
    TransportRole,
    TriggersRole,
    process_id,
)
from astraea.storage import open_storage
from astraea.storage.base import Storage
from astraea.tls_material import ensure_keypair, ensure_server_certificate
from astraea.transport.server import MqttServer
from astraea.triggers.engine import TriggerEngine

log = logging.getLogger("astraea")


class ConfigurationError(ValueError):
    """The settings cannot work together (the message says why)."""


@contextlib.contextmanager
def _data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Held while keys are read or made: processes started at once on one data folder
    would otherwise each write a key pair, and one could pair its key with another's
    certificate."""
    with (data_dir / ".keys.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class _EmbeddedHttpServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the platform decides when every part stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Platform:
    settings: Settings
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    storage: Storage | None = None
    bus: Bus | None = None
    keys: KeyPaths | None = None
    ca: CertificateAuthority | None = None
    http_port: int | None = None
    roles: dict[Role, RunningRole] = field(default_factory=dict)
    _http: _EmbeddedHttpServer | None = None
    _http_task: asyncio.Task[None] | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def is_ready(self) -> bool:
        return (
            self.storage is not None
            and self.bus is not None
            and self.bus.is_healthy()
            and len(self.roles) == len(self.settings.roles)
            and all(role.is_ready() for role in self.roles.values())
            and self._http is not None
            and self._http.started
            and not self._stopping.is_set()
        )

    @property
    def mqtt(self) -> MqttServer | None:
        role = self.roles.get(Role.TRANSPORT)
        return role.server if isinstance(role, TransportRole) else None

    @property
    def triggers(self) -> TriggerEngine | None:
        role = self.roles.get(Role.TRIGGERS)
        return role.engine if isinstance(role, TriggersRole) else None

    @property
    def api_context(self) -> ApiContext | None:
        role = self.roles.get(Role.API)
        return role.context if isinstance(role, ApiRole) else None

    @property
    def commands(self) -> DeviceCommands | None:
        context = self.api_context
        return None if context is None else context.commands

    @property
    def node_name(self) -> str | None:
        role = self.roles.get(Role.TRANSPORT)
        return role.node_name if isinstance(role, TransportRole) else None

    async def start(self) -> None:
        settings = self.settings
        check_settings(settings)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with _data_dir_lock(settings.data_dir):
            self.keys = self._prepare_keys()
            self.ca = CertificateAuthority.load_or_create(settings.data_dir / "ca")
        self.storage = await open_storage(settings.storage_url())
        identity = process_id()
        self.bus = open_bus(settings.bus_url, identity)
        await self.bus.start()
        shared = Shared(
            settings,
            self.storage,
            self.bus,
            self.registry,
            self.keys,
            self.ca,
            DeviceCommands(self.bus, self.storage.sessions, max_queued=MAX_QUEUED_MESSAGES),
            identity,
        )
        for role in START_ORDER:
            if role in settings.roles:
                await self._start_role(role, shared)
        await self._serve_http()

    async def _start_role(self, role: Role, shared: Shared) -> None:
        if role is Role.INGEST:
            ingest = IngestRole(shared)
            self.roles[role] = ingest
            await ingest.start()
        elif role is Role.TRIGGERS:
            triggers = TriggersRole(shared)
            self.roles[role] = triggers
            await triggers.start()
        elif role is Role.TRANSPORT:
            transport = TransportRole(shared)
            self.roles[role] = transport
            await transport.start()
        else:
            self.roles[role] = ApiRole(shared, self.broker_url)

    async def _serve_http(self) -> None:
        settings = self.settings
        api = self.roles.get(Role.API)
        if isinstance(api, ApiRole):
            app = api.app(self.registry, self.is_ready)
        else:  # health and metrics only
            app = create_app(None, registry=self.registry, is_ready=self.is_ready)
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

    @property
    def broker_url(self) -> str:
        """What devices are told to connect to: the configured URL, else the bound port."""
        if self.settings.broker_url:
            return self.settings.broker_url
        mqtt = self.mqtt
        port = mqtt.port if mqtt is not None else self.settings.mqtt_port
        return f"mqtts://localhost:{port}"

    def _prepare_keys(self) -> KeyPaths:
        settings = self.settings
        keys_dir = settings.data_dir / "keys"
        private = None
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
        ingestion and trigger delivery, and closes the bus and storage last."""
        self._stopping.set()
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            await self._http_task
            self._http = self._http_task = None
        for role in reversed(START_ORDER):
            running = self.roles.pop(role, None)
            if running is not None:
                try:
                    await running.stop()
                except Exception:  # the others must stop all the same
                    log.exception("role %s did not stop cleanly", role)
        if self.bus is not None:
            await self.bus.close()
            self.bus = None
        if self.storage is not None:
            await self.storage.close()
            self.storage = None


def check_settings(settings: Settings) -> None:
    """Refuses what cannot work: roles split over processes need a bus between them."""
    if not settings.roles:
        raise ConfigurationError("no role to run")
    if settings.bus_url is None and settings.roles != ALL_ROLES:
        missing = ", ".join(sorted(ALL_ROLES - settings.roles))
        raise ConfigurationError(
            f"without --bus-url every role must run in this process (missing: {missing}): "
            "roles in separate processes talk through a broker, e.g. "
            "--bus-url amqp://guest:guest@127.0.0.1:5672/"
        )


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
