"""The README's local recipe, run as written: honcho starts `deploy/Procfile` (two ingest
workers) with an env file like `deploy/local.env`, and a device goes through it."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tests.distributed.cluster import Process
from tests.distributed.conftest import Deployment, Sender, eventually

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).parents[2]
MQTT_OFFSET = 3783  # the Procfile's transport listens on $PORT + 3783
# (name, roles, offset from honcho's base port) of `-c ingest=2`
PROCESSES = [
    ("api.1", "api", 0),
    ("transport.1", "transport", 100),
    ("ingest.1", "ingest", 200),
    ("ingest.2", "ingest", 201),
    ("triggers.1", "triggers", 300),
]


def free_base_port() -> int:
    """A base port whose every derived port is free right now."""
    for _ in range(50):
        base = random.randrange(20000, 40000, 1000)
        ports = [base + offset for _, _, offset in PROCESSES] + [base + 100 + MQTT_OFFSET]
        if all(_free(port) for port in ports):
            return base
    raise AssertionError("no free port range")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def env_file(deployment: Deployment, base: int) -> str:
    """deploy/local.env with this test's database, vhost, data folder and ports."""
    cluster = deployment.cluster
    values = {
        "ASTRAEA_DATA_DIR": str(cluster.data_dir),
        "ASTRAEA_DATABASE_URL": cluster.database_url,
        "ASTRAEA_BUS_URL": cluster.bus_url,
        "ASTRAEA_BROKER_URL": f"mqtts://localhost:{base + 100 + MQTT_OFFSET}",
    }
    lines = []
    for line in (REPO / "deploy" / "local.env").read_text().splitlines():
        name = line.partition("=")[0]
        if name in values:
            line = f"{name}={values.pop(name)}"
        lines.append(line)
    assert not values, f"deploy/local.env no longer sets {sorted(values)}"
    lines.append(f"ASTRAEA_HOUSEKEEPING_PUBLIC_KEY={cluster.key_file}")
    return "\n".join(lines) + "\n"


async def test_the_procfile_recipe_runs_a_platform(deployment: Deployment) -> None:
    cluster = deployment.cluster
    base = free_base_port()
    environment = cluster.directory / "local.env"
    environment.write_text(env_file(deployment, base))
    honcho = shutil.which("honcho", path=str(Path(sys.executable).parent))
    assert honcho is not None
    log = cluster.directory / "honcho.log"
    procfile = REPO / "deploy" / "Procfile"
    command = [honcho, "start", "-f", str(procfile), "-e", str(environment), "-p", str(base)]
    with log.open("wb") as output:
        popen = subprocess.Popen(
            [*command, "-c", "ingest=2"],
            cwd=cluster.directory,
            env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    for name, roles, offset in PROCESSES:
        mqtt = base + offset + MQTT_OFFSET if roles == "transport" else None
        cluster.processes[name] = Process(name, roles, base + offset, mqtt, log, popen)
    for name, _, _ in PROCESSES:
        await cluster.healthy(name)

    await deployment.create_realm()
    credentials = await deployment.paired_device()
    sender = Sender(credentials, await deployment.connect(credentials, "transport.1"))
    await sender.stream(0, 20)
    expected = [float(index) for index in range(20)]

    async def stored_and_hooked() -> bool:
        stored = await deployment.stored(credentials.device_id)
        return stored == expected and deployment.hooked_values(credentials.device_id) == expected

    await eventually(stored_and_hooked)
