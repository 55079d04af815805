"""Start-up time and idle memory of `astraea up`.

Starts the real command on a fresh data folder (first start: keys and certificates are
generated) and again on the same folder (restart), measures the time until /health answers 200,
then the resident memory of the process after it has idled for a few seconds.

    .venv/bin/python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _measure(data_dir: Path, idle_seconds: float) -> tuple[float, float]:
    port = _free_port()
    env = {**os.environ, "ASTRAEA_HTTP_PORT": str(port), "ASTRAEA_MQTT_PORT": str(_free_port())}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "astraea.cli", "up", "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit("astraea up exited during start-up")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.005)
        ready = time.perf_counter() - started
        time.sleep(idle_seconds)
        rss = psutil.Process(process.pid).memory_info().rss / 2**20
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    return ready, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds idle before reading RSS")
    args = parser.parse_args()
    first, restart, memory = [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp) / "data"
            ready, _ = _measure(data_dir, 0)
            first.append(ready)
            ready, rss = _measure(data_dir, args.idle)
            restart.append(ready)
            memory.append(rss)
    print(f"runs: {args.runs}")
    print(
        f"first start (generates keys) to healthy: median {statistics.median(first):.2f} s "
        f"(min {min(first):.2f}, max {max(first):.2f})"
    )
    print(
        f"restart to healthy:                      median {statistics.median(restart):.2f} s "
        f"(min {min(restart):.2f}, max {max(restart):.2f})"
    )
    print(
        f"idle RSS after {args.idle:.0f} s: median {statistics.median(memory):.1f} MiB "
        f"(min {min(memory):.1f}, max {max(memory):.1f})"
    )


if __name__ == "__main__":
    main()
