"""A distributed platform for tests: real `astraea serve` processes on PostgreSQL and RabbitMQ.

Each test gets its own PostgreSQL schema and RabbitMQ vhost (see `tests/services.py`), one
data folder shared by its processes (so they share keys, as a deployment's processes do), and
free ports. Processes are killed with SIGKILL where a test says so; `stop` ends the others
with SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.conftest import KeyPair

HEALTHY_WITHIN = 40.0  # seconds; processes start in parallel on a 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    name: str
    roles: str
    http_port: int
    mqtt_port: int | None
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class Cluster:
    """Processes of one platform; `env` holds what they share."""

    directory: Path
    database_url: str
    bus_url: str
    housekeeping: KeyPair
    extra_env: Mapping[str, str] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_dir = self.directory / "data"
        self.key_file = self.directory / "housekeeping_public.pem"
        self.key_file.write_text(self.housekeeping.public_pem)

    def add(self, name: str, roles: str, *, mqtt: bool = False) -> Process:
        process = Process(
            name,
            roles,
            free_port(),
            free_port() if mqtt else None,
            self.directory / f"{name}.log",
        )
        self.processes[name] = process
        return process

    def start(self, name: str) -> Process:
        process = self.processes[name]
        env = {
            **os.environ,
            **self.extra_env,
            "ASTRAEA_DATA_DIR": str(self.data_dir),
            "ASTRAEA_DATABASE_URL": self.database_url,
            "ASTRAEA_BUS_URL": self.bus_url,
            "ASTRAEA_HOUSEKEEPING_PUBLIC_KEY": str(self.key_file),
            "ASTRAEA_HTTP_PORT": str(process.http_port),
            "ASTRAEA_NODE_NAME": name,
        }
        if process.mqtt_port is not None:
            env["ASTRAEA_MQTT_PORT"] = str(process.mqtt_port)
        command = [sys.executable, "-m", "astraea.cli", "serve", "--role", process.roles]
        log = process.log.open("ab")
        process.popen = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return process

    async def start_all(self) -> None:
        for name in self.processes:
            self.start(name)
        await asyncio.gather(*(self.healthy(name) for name in self.processes))

    async def healthy(self, name: str, timeout: float = HEALTHY_WITHIN) -> None:
        process = self.processes[name]
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                if not process.alive():
                    raise AssertionError(f"{name} exited:\n{self.output(name)}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{process.url}/health")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError(f"{name} not healthy in {timeout} s:\n{self.output(name)}")

    def kill(self, name: str) -> None:
        """SIGKILL: no clean-up of any kind."""
        process = self.processes[name]
        assert process.popen is not None
        process.popen.send_signal(signal.SIGKILL)
        process.popen.wait(10)

    def output(self, name: str) -> str:
        log = self.processes[name].log
        return log.read_text(errors="replace")[-6000:] if log.exists() else ""

    def stop(self) -> None:
        running = [p for p in self.processes.values() if p.alive()]
        for process in running:
            assert process.popen is not None
            process.popen.send_signal(signal.SIGTERM)
        for process in running:
            assert process.popen is not None
            try:
                process.popen.wait(20)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(5)

    def api(self) -> Process:
        return next(p for p in self.processes.values() if "api" in p.roles and p.alive())

    def broker_cert(self) -> Path:
        return self.data_dir / "keys" / "broker" / "server.crt"


@contextlib.contextmanager
def cluster_stopped(cluster: Cluster) -> Iterator[Cluster]:
    try:
        yield cluster
    finally:
        cluster.stop()
