"""Provision and drive the official Astarte Python device SDK from the project's tests.

The SDK (`astarte-device-sdk`) depends on PyPI `bson`, which installs the same
top-level module as pymongo's `bson` used by Astraea. The two can never share an
interpreter, so the SDK lives in its own virtual environment (`<repo>/.venv-sdk`)
and runs in a subprocess (`device_driver.py`). This module is imported by pytest
from the project venv and only uses the standard library.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SDK_DIR = Path(__file__).resolve().parent
DRIVER = SDK_DIR / "device_driver.py"
VENV_NAME = ".venv-sdk"
REQUIREMENTS_RELPATH = Path("tests") / "sdk" / "requirements.txt"
# Both files live inside the venv directory, which `.venv-*/` already ignores.
MARKER_NAME = ".astraea-requirements.sha256"
LOCK_NAME = ".astraea-provision.lock"
PIP_TIMEOUT_S = 1200

# Variables that could leak the project venv's packages (and pymongo's `bson`) into the SDK venv.
_LEAKY_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH")


class SdkVenvError(RuntimeError):
    """Raised when the SDK venv cannot be created or its requirements cannot be installed."""


def requirements_digest(requirements: Path) -> str:
    """Digest of the requirements and of the interpreter, so either change forces a rebuild."""
    digest = hashlib.sha256()
    digest.update(requirements.read_bytes())
    digest.update(f"\0{sys.version_info.major}.{sys.version_info.minor}".encode())
    digest.update(f"\0{os.path.realpath(sys.executable)}".encode())
    return digest.hexdigest()


def venv_python(venv: Path) -> Path:
    """Path of the interpreter inside a POSIX virtual environment."""
    return venv / "bin" / "python"


def ensure_sdk_venv(root: Path) -> Path:
    """Create or refresh `<root>/.venv-sdk` and return its python.

    The venv is (re)built when the marker is missing or does not match the digest of
    `tests/sdk/requirements.txt`. An exclusive `flock` on a file inside the venv
    directory serialises concurrent pytest processes: a waiting process re-checks
    the marker once it gets the lock and normally finds the venv ready.
    """
    root = root.resolve()
    requirements = root / REQUIREMENTS_RELPATH
    if not requirements.is_file():
        raise SdkVenvError(f"missing {requirements}")
    venv = root / VENV_NAME
    venv.mkdir(exist_ok=True)
    python = venv_python(venv)
    marker = venv / MARKER_NAME
    digest = requirements_digest(requirements)

    with open(venv / LOCK_NAME, "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            if _is_ready(python, marker, digest):
                return python
            _build(venv, requirements)
            marker.write_text(digest + "\n")
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return python


def _is_ready(python: Path, marker: Path, digest: str) -> bool:
    try:
        return python.exists() and marker.read_text().strip() == digest
    except FileNotFoundError:
        return False


def _build(venv: Path, requirements: Path) -> None:
    """Wipe the venv directory (keeping the lock file that other processes wait on) and rebuild."""
    for entry in venv.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    # sys.executable (a python3) may itself be a venv interpreter; `venv` then bases the new
    # environment on the underlying installation, so the SDK gets the same CPython version.
    _run([sys.executable, "-m", "venv", str(venv)], "create the SDK venv")
    _run(
        [
            str(venv_python(venv)),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-r",
            str(requirements),
        ],
        "install tests/sdk/requirements.txt",
    )


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
        env=clean_env(),
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise SdkVenvError(f"could not {what} (exit {proc.returncode}):\n{tail}")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for SDK subprocesses: the caller's, minus anything pointing at another venv."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    if extra:
        env.update(extra)
    return env


@dataclass
class DriverResult:
    """Everything a finished driver run produced."""

    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    def of(self, kind: str) -> list[dict[str, Any]]:
        """Events whose `event` field equals `kind`, in order."""
        return [e for e in self.events if e.get("event") == kind]


@dataclass
class DriverProcess:
    """A running `device_driver.py`, with its JSON events collected by a reader thread.

    Tests that need to act on the server side while the device runs (e.g. publish to a
    server-owned interface once the device is connected) use `wait_for`; others can simply
    call `run_scenario`.
    """

    proc: subprocess.Popen[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    _queue: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    _stderr: list[str] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _eof: bool = False

    @classmethod
    def start(
        cls,
        python: Path,
        scenario: Mapping[str, Any],
        env: Mapping[str, str] | None = None,
    ) -> DriverProcess:
        """Spawn the driver with `scenario` on its stdin (`-I`: ignore PYTHON* vars, user site)."""
        proc = subprocess.Popen(
            [str(python), "-I", "-u", str(DRIVER), "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(env),
        )
        driver = cls(proc)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(scenario))
        proc.stdin.close()
        driver._threads = [
            threading.Thread(target=driver._read_stdout, daemon=True),
            threading.Thread(target=driver._read_stderr, daemon=True),
        ]
        for thread in driver._threads:
            thread.start()
        return driver

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "unparsable", "line": line}
            self._queue.put(event)
        self._queue.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def _drain(self, timeout: float) -> Iterator[dict[str, Any] | None]:
        """Yield new events (None once stdout is closed) until `timeout` elapses."""
        deadline = time.monotonic() + timeout
        while not self._eof:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            if item is None:
                self._eof = True
            else:
                self.events.append(item)
            yield item
        yield None

    def wait_for(
        self,
        kind: str,
        timeout: float = 30.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Return the next (not yet seen) event of `kind`; raise AssertionError on timeout/exit."""
        for event in self._drain(timeout):
            if event is None:
                raise AssertionError(
                    f"driver exited before a {kind!r} event: {self.events} {self.stderr}"
                )
            if event.get("event") == kind and (where is None or where(event)):
                return event
        raise AssertionError(f"no {kind!r} event within {timeout}s: {self.events}")

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def finish(self, timeout: float = 60.0) -> DriverResult:
        """Wait for the driver to exit (killing it after `timeout`) and collect everything."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for thread in self._threads:
            thread.join(timeout=5)
        for item in self._drain(5.0):
            if item is None:
                break
        return DriverResult(self.proc.returncode, list(self.events), self.stderr)

    def kill(self) -> None:
        """Stop the driver abruptly (no MQTT DISCONNECT is sent)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> DriverProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def run_scenario(
    python: Path,
    scenario: Mapping[str, Any],
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> DriverResult:
    """Run a whole scenario and return its events once the driver has exited."""
    return DriverProcess.start(python, scenario, env).finish(timeout)
