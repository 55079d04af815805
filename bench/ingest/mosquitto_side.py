"""Mosquitto (Debian package) as the ceiling: same devices, same TLS, one `#` subscriber.

The broker is configured the way Astarte's broker treats devices: TLS with a required client
certificate whose CN becomes the user name, and a pattern ACL confining each device to its
own `<realm>/<device_id>/#` subtree (`--no-acl` drops it, to see what it costs). Persistence
is off; queue limits are raised so that a QoS 1 subscriber lags instead of losing messages
(with the defaults Mosquitto dropped 97.5 % of a burst in the earlier broker measurements).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from certs import ThrowawayCA
from loadgen import Device

SUBSCRIBER_CN = "bench-subscriber"


class MosquittoBroker:
    def __init__(self, binary: str, workdir: Path, ca: ThrowawayCA, port: int, acl: bool) -> None:
        self.binary = binary
        self.workdir = workdir
        self.ca = ca
        self.port = port
        self.acl = acl
        self.process: subprocess.Popen[bytes] | None = None
        self.log_file = workdir / "mosquitto.log"

    def write_config(self) -> Path:
        cert, key = self.ca.server_pair()
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "connection_messages false",
            "max_inflight_messages 1000",
            "max_queued_messages 1000000",
        ]
        if self.acl:
            acl_file = self.workdir / "acl"
            acl_file.write_text(f"user {SUBSCRIBER_CN}\ntopic read #\n\npattern write %u/#\n")
            lines.append(f"acl_file {acl_file}")
        lines += [
            f"listener {self.port} 127.0.0.1",
            f"cafile {self.ca.cert_file}",
            f"certfile {cert}",
            f"keyfile {key}",
            "require_certificate true",
            "use_identity_as_username true",
        ]
        config = self.workdir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout: float = 10.0) -> int:
        if self.port == 1883:
            raise ValueError("port 1883 belongs to the shared Mosquitto instance")
        # Mosquitto started as root drops to user "mosquitto" before reading its files.
        os.chmod(self.workdir, 0o755)
        config = self.write_config()
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log_file.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self.process.pid
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def find_mosquitto() -> str:
    return shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def mosquitto_devices(
    ca: ThrowawayCA, realm: str, ids: list[str], interface: str, path: str
) -> list[Device]:
    """Devices with their own certificates from the throwaway CA (cached between runs)."""
    devices = []
    for index, device_id in enumerate(ids):
        client_id = f"{realm}/{device_id}"
        bundle = ca.client_bundle(client_id)
        devices.append(Device(index, client_id, f"{client_id}/{interface}{path}", str(bundle)))
    return devices
