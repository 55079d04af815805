"""`astraea up` as a user runs it: a real process, real signals, the same data folder twice."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(data_dir: Path, http_port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "ASTRAEA_HTTP_PORT": str(http_port),
        "ASTRAEA_MQTT_PORT": str(_free_port()),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "astraea.cli", "up", "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_healthy(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("astraea up did not become healthy")


def _stop(process: subprocess.Popen[str], sig: signal.Signals) -> str:
    process.send_signal(sig)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    return output


def test_up_starts_announces_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = _free_port()
    process = _start(data_dir, port)
    _wait_healthy(process, port)
    output = _stop(process, signal.SIGTERM)
    public_key = data_dir / "keys" / "housekeeping_public.pem"
    assert f"http://127.0.0.1:{port}" in output
    assert str(public_key) in output.replace("\n", "")
    assert "Astraea stopped." in output
    first_key = public_key.read_text()
    # the next steps name this platform's port and key, and work as printed
    steps = output[output.index("Next:") :].splitlines()[1:4]
    assert f"--url http://127.0.0.1:{port}" in steps[1]
    assert f"--private-key {data_dir / 'keys' / 'housekeeping_private.pem'}" in steps[1]

    process = _start(data_dir, port)
    _wait_healthy(process, port)
    env = {**os.environ, "NO_COLOR": "1"}
    for step in steps:
        command = shlex.split(step.strip())
        assert command[0] == "astraea"
        extra = ["--yes"] if "sync" in command else []
        done = subprocess.run(
            [sys.executable, "-m", "astraea.cli", *command[1:], *extra],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, (step, done.stderr)
    output = _stop(process, signal.SIGINT)
    assert public_key.read_text() == first_key
    assert "Next:" not in output  # a data folder that was started before
    # the access log saw the realm created and its interfaces synced
    assert "astraea.access method=POST path=/housekeeping/v1/realms status=201" in output
    assert "path=/realmmanagement/v1/myrealm/interfaces status=201" in output
    assert "realm=myrealm" in output


def test_up_reports_a_busy_port_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = _start(tmp_path / "data", port)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "error:" in output
    assert "Traceback" not in output
