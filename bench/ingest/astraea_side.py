"""Astraea as the system under test: `astraea up` in a subprocess, devices registered through
Pairing, samples read back through AppEngine.

Registering a device costs two bcrypt-bound Pairing calls (~60 ms each), so a fleet is
prepared once into `--prepared-dir` (data folder with realm, interface and devices, plus each
device's certificate and key) and every run starts from a fresh copy of that data folder:
the stored-sample count then starts at zero and setup is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from certs import csr_pem, device_ids, key_pem, new_key, write_private
from loadgen import Device
from measure import free_port

from astraea.jwt_tokens import mint_token
from astraea.tls_material import generate_keypair

REALM = "bench"
INTERFACE = "org.astraea.bench.Values"
SENSOR_PATH = "/s1/value"
INTROSPECTION = f"{INTERFACE}:1:0"
INTERFACE_JSON: dict[str, Any] = {
    "interface_name": INTERFACE,
    "version_major": 1,
    "version_minor": 0,
    "type": "datastream",
    "ownership": "device",
    "aggregation": "individual",
    "description": "Benchmark values: one double per sensor.",
    "mappings": [{"endpoint": "/%{sensor}/value", "type": "double", "reliability": "guaranteed"}],
}
_API_SERVICES = ["realm-management", "pairing", "appengine"]
#: Seconds after /health turns 200 that the MQTT listener may take to appear.
_MQTT_GRACE = 10.0


class AstraeaServer:
    """`astraea up` on a data folder, on free ports; stopped with SIGTERM like an operator would."""

    def __init__(
        self, data_dir: Path, log_file: Path, arguments: tuple[str, ...] = ("up",)
    ) -> None:
        """`arguments`: the command and flags before the data folder and ports."""
        self.data_dir = data_dir
        self.log_file = log_file
        self.arguments = arguments
        self.http_port = free_port()
        self.mqtt_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def broker_cert(self) -> Path:
        return self.data_dir / "keys" / "broker" / "server.crt"

    @property
    def database(self) -> Path:
        return self.data_dir / "astraea.db"

    def housekeeping_token(self) -> str:
        pem = (self.data_dir / "keys" / "housekeeping_private.pem").read_text()
        return mint_token(pem, ["housekeeping"], expiry_seconds=3600)

    async def start(self, timeout: float = 60.0, *, need_mqtt: bool = True) -> int:
        script = Path(sys.executable).with_name("astraea")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "astraea.cli"]
        command += [
            *self.arguments,
            "--data-dir",
            str(self.data_dir),
            "--http-port",
            str(self.http_port),
            "--mqtt-port",
            str(self.mqtt_port),
        ]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        healthy_since: float | None = None
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    tail = self.log_file.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"astraea up exited during start-up:\n{tail}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/health")).status_code == 200:
                        healthy_since = healthy_since or time.monotonic()
                if healthy_since is not None:
                    if not need_mqtt or await _port_open(self.mqtt_port):
                        return self.process.pid
                    if time.monotonic() - healthy_since > _MQTT_GRACE:
                        break
                await asyncio.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"astraea up (HTTP {self.http_port}) did not listen on MQTT port {self.mqtt_port}; "
            f"is the MQTT transport part of `astraea up` yet? Log: {self.log_file}"
        )

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


async def _port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class PreparedFleet:
    """A data folder with realm, interface and registered devices, and their certificates."""

    def __init__(self, root: Path, database_url: str | None = None) -> None:
        """`database_url`: register into that database instead of the folder's SQLite."""
        self.root = root
        self.database_url = database_url
        self.data_dir = root / "data"
        self.devices_dir = root / "devices"
        self.realm_key = root / "realm_private.pem"

    def bundle(self, device_id: str) -> Path:
        return self.devices_dir / f"{device_id}.pem"

    def missing(self, ids: list[str]) -> list[str]:
        return [device_id for device_id in ids if not self.bundle(device_id).exists()]

    def realm_token(self) -> str:
        return mint_token(self.realm_key.read_text(), _API_SERVICES, expiry_seconds=3600)

    async def ensure(self, count: int, concurrency: int, say: Any) -> list[str]:
        """Register whatever devices are missing; returns the ids of the first `count`."""
        ids = device_ids(count)
        missing = self.missing(ids)
        if not missing:
            return ids
        self.root.mkdir(parents=True, exist_ok=True)
        self.devices_dir.mkdir(exist_ok=True)
        arguments: tuple[str, ...] = ("up",)
        if self.database_url is not None:
            arguments += ("--database-url", self.database_url)
        server = AstraeaServer(self.data_dir, self.root / "prepare.log", arguments)
        await server.start(need_mqtt=False)
        started = time.perf_counter()
        try:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
                await self._ensure_realm(http, server.housekeeping_token())
                headers = {"Authorization": f"Bearer {self.realm_token()}"}
                await self._ensure_interface(http, headers)
                slots = asyncio.Semaphore(concurrency)
                await asyncio.gather(*(self._register(http, headers, d, slots) for d in missing))
        finally:
            server.stop()
        say(
            f"prepared {len(missing)} devices in {time.perf_counter() - started:.1f} s "
            f"into {self.root}"
        )
        (self.root / "manifest.json").write_text(
            json.dumps({"realm": REALM, "interface": INTERFACE, "devices": len(ids)}) + "\n"
        )
        return ids

    async def _ensure_realm(self, http: httpx.AsyncClient, housekeeping_token: str) -> None:
        headers = {"Authorization": f"Bearer {housekeeping_token}"}
        if (await http.get(f"/housekeeping/v1/realms/{REALM}", headers=headers)).status_code == 200:
            return
        private_pem, public_pem = generate_keypair("ec")
        write_private(self.realm_key, private_pem.encode())
        body = {"data": {"realm_name": REALM, "jwt_public_key_pem": public_pem}}
        _expect(await http.post("/housekeeping/v1/realms", json=body, headers=headers), 201)

    async def _ensure_interface(self, http: httpx.AsyncClient, headers: dict[str, str]) -> None:
        base = f"/realmmanagement/v1/{REALM}/interfaces"
        if (await http.get(f"{base}/{INTERFACE}/1", headers=headers)).status_code == 200:
            return
        _expect(await http.post(base, json={"data": INTERFACE_JSON}, headers=headers), 201)

    async def _register(
        self,
        http: httpx.AsyncClient,
        headers: dict[str, str],
        device_id: str,
        slots: asyncio.Semaphore,
    ) -> None:
        async with slots:
            body = {
                "data": {
                    "hw_id": device_id,
                    "initial_introspection": {INTERFACE: {"major": 1, "minor": 0}},
                }
            }
            response = await http.post(
                f"/pairing/v1/{REALM}/agent/devices", json=body, headers=headers
            )
            secret = _expect(response, 201)["data"]["credentials_secret"]
            key = new_key()
            csr = csr_pem(key, f"{REALM}/{device_id}")
            response = await http.post(
                f"/pairing/v1/{REALM}/devices/{device_id}/protocols/astarte_mqtt_v1/credentials",
                json={"data": {"csr": csr}},
                headers={"Authorization": f"Bearer {secret}"},
            )
            certificate = _expect(response, 201)["data"]["client_crt"]
            write_private(self.bundle(device_id), certificate.encode() + key_pem(key))

    def fresh_copy(self, run_dir: Path) -> Path:
        """A pristine copy of the prepared data folder, so each run stores into an empty table."""
        target = run_dir / "data"
        shutil.copytree(self.data_dir, target)
        return target

    def devices(self, ids: list[str]) -> list[Device]:
        devices = []
        for index, device_id in enumerate(ids):
            client_id = f"{REALM}/{device_id}"
            topic = f"{client_id}/{INTERFACE}{SENSOR_PATH}"
            devices.append(Device(index, client_id, topic, str(self.bundle(device_id))))
        return devices


def _expect(response: httpx.Response, *statuses: int) -> Any:
    if response.status_code not in statuses:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:500]}"
        )
    return response.json() if response.content else None


def stored_count(database: Path) -> int:
    """Cross-check only: the samples of the benchmark interface in the SQLite file."""
    with contextlib.closing(
        sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    ) as connection:
        row = connection.execute(
            "SELECT COUNT(*) FROM individual_datastreams WHERE realm = ? AND interface_name = ?",
            (REALM, INTERFACE),
        ).fetchone()
        return int(row[0])


async def wait_stored(
    database: Path, expected: int, idle: float, timeout: float
) -> tuple[int, int]:
    """Poll the stored count until it reaches `expected` or stops growing for `idle` s.

    Returns the final count and the perf_counter_ns at which it was first seen (QoS 0 has no
    acknowledgement, so this is the only "stored" time there is). A COUNT over 200 k rows
    costs tens of ms of CPU taken from the server, so polls are spaced by the expected time
    to completion and only close in (to 50 ms) near the end.
    """
    loop = asyncio.get_running_loop()
    count, seen_ns, changed = -1, 0, time.monotonic()
    started, first = time.monotonic(), None
    deadline = started + timeout
    while time.monotonic() < deadline:
        current = await loop.run_in_executor(None, stored_count, database)
        now = time.perf_counter_ns()
        if current != count:
            count, seen_ns, changed = current, now, time.monotonic()
        if count >= expected or time.monotonic() - changed > idle:
            break
        first = count if first is None else first
        elapsed = time.monotonic() - started
        rate = (count - first) / elapsed if elapsed > 0 else 0
        remaining = (expected - count) / rate if rate > 0 else 0.1
        await asyncio.sleep(min(1.0, max(0.05, remaining / 2)))
    return count, seen_ns


async def verify_through_appengine(
    base_url: str, token: str, devices: list[Device], ids: list[str], per_device: int
) -> dict[str, Any]:
    """Read the samples of `devices` back through AppEngine and compare them value by value."""
    checked = complete = missing = unexpected = 0
    errors: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=60, headers=headers) as http:
        for device in devices:
            device_id = ids[device.index]
            url = f"/appengine/v1/{REALM}/devices/{device_id}/interfaces/{INTERFACE}{SENSOR_PATH}"
            response = await http.get(url, params={"limit": per_device + 1})
            checked += 1
            if response.status_code != 200:
                errors.append(f"{device_id}: HTTP {response.status_code} {response.text[:200]}")
                missing += per_device
                continue
            data = response.json().get("data", [])
            values = [sample.get("value") for sample in data] if isinstance(data, list) else []
            expected = {float(device.index * per_device + k) for k in range(per_device)}
            got = {float(v) for v in values if isinstance(v, int | float)}
            missing += len(expected - got)
            unexpected += len(values) - len(got & expected)
            complete += got == expected and len(values) == per_device
    return {
        "checked": checked,
        "complete": complete,
        "missing": missing,
        "unexpected": unexpected,
        "errors": errors[:10],
    }
