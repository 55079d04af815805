"""Astraea distributed as the system under test: `astraea serve` processes (api, one transport,
N ingest workers) on PostgreSQL and RabbitMQ.

The fleet is registered once into a template database (`astraea up --database-url`), next to
its data folder (CA, broker certificate); every run gets a fresh database copied from the
template (`CREATE DATABASE ... TEMPLATE`, a file copy) and a fresh RabbitMQ vhost, so the
stored count starts at zero and queues start empty.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from astraea_side import INTERFACE, REALM, AstraeaServer, PreparedFleet

MANAGEMENT_URL = "http://127.0.0.1:15672/api"
BROKER_CREDENTIALS = ("guest", "guest")
TEMPLATE = "astraea_bench_fleet"


def _database_url(admin_url: str, database: str) -> str:
    return admin_url.rsplit("/", 1)[0] + f"/{database}"


async def _database_exists(admin_url: str, database: str) -> bool:
    connection = await asyncpg.connect(admin_url)
    try:
        found = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        return found is not None
    finally:
        await connection.close()


async def _admin(admin_url: str, statement: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def prepared_fleet(root: Path, admin_url: str) -> PreparedFleet:
    """The fleet registered in the template database; a folder whose database is gone (a new
    machine) is started over."""
    if not await _database_exists(admin_url, TEMPLATE):
        shutil.rmtree(root, ignore_errors=True)
        await _admin(admin_url, f'CREATE DATABASE "{TEMPLATE}"')
    return PreparedFleet(root, _database_url(admin_url, TEMPLATE))


def _service_pids(name: str) -> list[int]:
    """The processes of a local service (RabbitMQ's VM, PostgreSQL's server and backends)."""
    return [
        process.pid
        for process in psutil.process_iter(["name"])
        if (process.info["name"] or "").startswith(name)
    ]


class DistributedPlatform:
    """api + transport + `workers` ingest processes on one data folder, database and vhost."""

    def __init__(self, data_dir: Path, workdir: Path, admin_url: str, workers: int) -> None:
        self.data_dir = data_dir
        self.admin_url = admin_url
        self.database = f"astraea_bench_run_{uuid.uuid4().hex[:8]}"
        self.vhost = f"astraea-bench-{uuid.uuid4().hex[:8]}"
        self.database_url = _database_url(admin_url, self.database)
        bus_url = "amqp://{}:{}@127.0.0.1:5672/{}".format(*BROKER_CREDENTIALS, self.vhost)
        shared = ("--database-url", self.database_url, "--bus-url", bus_url)
        roles = ["api", "transport"] + [f"ingest-{n}" for n in range(1, workers + 1)]
        self.processes = {
            name: AstraeaServer(
                data_dir,
                workdir / f"{name}.log",
                ("serve", "--role", name.split("-")[0], "--node-name", name, *shared),
            )
            for name in roles
        }

    @property
    def api(self) -> AstraeaServer:
        return self.processes["api"]

    @property
    def transport(self) -> AstraeaServer:
        return self.processes["transport"]

    async def start(self) -> dict[str, list[int]]:
        """Starts every process; returns the pids to measure, by role (broker and database
        included: they are part of the system under test here)."""
        await _admin(self.admin_url, f'CREATE DATABASE "{self.database}" TEMPLATE "{TEMPLATE}"')
        async with httpx.AsyncClient(base_url=MANAGEMENT_URL, auth=BROKER_CREDENTIALS) as api:
            (await api.put(f"/vhosts/{self.vhost}")).raise_for_status()
            everything = {"configure": ".*", "write": ".*", "read": ".*"}
            path = f"/permissions/{self.vhost}/{BROKER_CREDENTIALS[0]}"
            (await api.put(path, json=everything)).raise_for_status()
        pids: dict[str, list[int]] = {}
        for name, process in self.processes.items():  # api first: it migrates the database
            pids[name] = [await process.start(need_mqtt=name == "transport")]
        pids["rabbitmq"] = _service_pids("beam.smp")
        pids["postgresql"] = _service_pids("postgres")
        return pids

    async def stop(self) -> None:
        for process in self.processes.values():
            process.stop()
        async with httpx.AsyncClient(base_url=MANAGEMENT_URL, auth=BROKER_CREDENTIALS) as api:
            await api.delete(f"/vhosts/{self.vhost}")
        await _admin(self.admin_url, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    async def stored_count(self) -> int:
        connection = await asyncpg.connect(self.database_url)
        try:
            count = await connection.fetchval(
                "SELECT COUNT(*) FROM individual_datastreams"
                " WHERE realm = $1 AND interface_name = $2",
                REALM,
                INTERFACE,
            )
            return int(count)
        finally:
            await connection.close()

    async def wait_stored(self, expected: int, idle: float, timeout: float) -> tuple[int, int]:
        """Polls the count (every 100 ms) until it reaches `expected` or stops growing for
        `idle` s; returns it and the perf_counter_ns it was first seen at."""
        count, seen_ns, changed = -1, 0, time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = await self.stored_count()
            if current != count:
                count, seen_ns, changed = current, time.perf_counter_ns(), time.monotonic()
            if count >= expected or time.monotonic() - changed > idle:
                break
            await asyncio.sleep(0.1)
        return count, seen_ns


def cpu_per_message(cpu_s: dict[str, float], stored: int) -> dict[str, Any]:
    """Microseconds of CPU per stored message, by process, with ingest workers summed."""
    if not stored:
        return {}
    by_role: dict[str, float] = {}
    for name, seconds in cpu_s.items():
        role = name.split("-")[0]
        by_role[role] = by_role.get(role, 0.0) + seconds
    return {role: round(1e6 * seconds / stored, 1) for role, seconds in by_role.items()}
