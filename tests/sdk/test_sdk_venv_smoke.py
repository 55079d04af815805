"""Smoke tests for the official-SDK test tooling: the isolated venv and the scenario driver.

No Astraea server is involved: these only prove that `.venv-sdk` can be provisioned, that the
unmodified SDK imports there (with py-bson, not pymongo's bson), and that `device_driver.py`
builds a device and reports failures as JSON lines. The first run creates the venv (about a
minute, network-bound); later runs reuse it and take a few seconds.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sdk_venv import (
    DRIVER,
    REQUIREMENTS_RELPATH,
    DriverResult,
    clean_env,
    ensure_sdk_venv,
    run_scenario,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEVICE_ID = "2TBn-jNESuuHamE2Zo1anA"

# Only the first provisioning is slow; the global 120 s timeout would cut it short.
pytestmark = pytest.mark.timeout(1500)

VALUES_INTERFACE: dict[str, Any] = {
    "interface_name": "org.astraea.test.SmokeValues",
    "version_major": 1,
    "version_minor": 0,
    "type": "datastream",
    "ownership": "device",
    "mappings": [
        {"endpoint": "/%{sensor}/value", "type": "double", "explicit_timestamp": True},
        {"endpoint": "/blob", "type": "binaryblob"},
    ],
}
SERVER_INTERFACE: dict[str, Any] = {
    "interface_name": "org.astraea.test.SmokeServer",
    "version_major": 0,
    "version_minor": 1,
    "type": "properties",
    "ownership": "server",
    "mappings": [{"endpoint": "/level", "type": "integer"}],
}


@pytest.fixture(scope="module")
def sdk_python() -> Path:
    return ensure_sdk_venv(REPO_ROOT)


@pytest.fixture
def interfaces_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "interfaces"
    folder.mkdir()
    for definition in (VALUES_INTERFACE, SERVER_INTERFACE):
        path = folder / f"{definition['interface_name']}.json"
        path.write_text(json.dumps(definition))
    return folder


def closed_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def scenario(tmp_path: Path, interfaces_dir: Path, actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "pairing_base_url": f"http://127.0.0.1:{closed_port()}",
        "realm": "smoke",
        "device_id": DEVICE_ID,
        "credentials_secret": "c2VjcmV0",
        "interfaces_dir": str(interfaces_dir),
        "persistency_dir": str(tmp_path / "persistency"),
        "actions": actions,
    }


def assert_json_lines(result: DriverResult) -> None:
    assert result.events, result.stderr
    assert not [e for e in result.events if e.get("event") == "unparsable"], result.events


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_sdk_imports_in_its_own_venv(sdk_python: Path) -> None:
    probe = (
        "import json, bson, paho.mqtt, astarte.device\n"
        "from astarte.device import DeviceMqtt\n"
        "print(json.dumps({'sdk': astarte.device.__version__, 'paho': paho.mqtt.__version__,"
        " 'bson_file': bson.__file__, 'py_bson': hasattr(bson, 'dumps'),"
        " 'has_device_mqtt': callable(DeviceMqtt)}))\n"
    )
    proc = subprocess.run(
        [str(sdk_python), "-I", "-c", probe],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=True,
    )
    info = json.loads(proc.stdout)
    assert info["sdk"] == "0.14.0"
    assert info["paho"].startswith("2.")
    assert info["has_device_mqtt"]
    # The SDK's bson is PyPI py-bson inside .venv-sdk, not pymongo's from the project venv.
    assert info["py_bson"]
    assert Path(info["bson_file"]).resolve().is_relative_to((REPO_ROOT / ".venv-sdk").resolve())


def test_requirements_pin_the_whole_environment(sdk_python: Path) -> None:
    freeze = subprocess.run(
        [str(sdk_python), "-I", "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
        check=True,
    ).stdout
    installed = {normalise(line) for line in freeze.split() if "==" in line}
    pinned = set()
    for line in (REPO_ROOT / REQUIREMENTS_RELPATH).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert "==" in line, f"unpinned requirement: {line}"
            pinned.add(normalise(line))
    assert installed == pinned


def test_concurrent_provisioning_is_safe(sdk_python: Path) -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from sdk_venv import ensure_sdk_venv;"
        "print(ensure_sdk_venv(Path(sys.argv[2])))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(DRIVER.parent), str(REPO_ROOT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=1200) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert Path(out.strip()) == sdk_python


def test_driver_builds_device_and_reports_unreachable_pairing(
    sdk_python: Path, tmp_path: Path, interfaces_dir: Path
) -> None:
    result = run_scenario(
        sdk_python,
        scenario(tmp_path, interfaces_dir, [{"action": "connect"}]),
        timeout=60,
    )
    assert_json_lines(result)
    kinds = [e["event"] for e in result.events]
    assert kinds == ["started", "device_created", "error", "finished"], result.events
    created = result.of("device_created")[0]
    assert created["interfaces"] == sorted(
        [VALUES_INTERFACE["interface_name"], SERVER_INTERFACE["interface_name"]]
    )
    error = result.of("error")[0]
    assert error["action"] == "connect"
    assert error["error"] == "ConnectionError"
    assert error["expected"] is False
    assert result.of("finished")[0]["ok"] is False
    assert result.returncode == 1
    # The SDK created its key before trying Pairing: persistency layout is <dir>/<device>/crypto.
    assert (tmp_path / "persistency" / DEVICE_ID / "crypto" / "device.key").is_file()


def test_driver_coerces_values_and_honours_expected_errors(
    sdk_python: Path, tmp_path: Path, interfaces_dir: Path
) -> None:
    iface = VALUES_INTERFACE["interface_name"]
    actions = [
        # Coerced to float + aware datetime, so only the missing connection is left to fail.
        {
            "action": "send",
            "interface": iface,
            "path": "/s1/value",
            "value": 21,
            "timestamp": "2024-05-01T10:00:00Z",
            "expect_error": "DeviceDisconnectedError",
        },
        {
            "action": "send",
            "interface": iface,
            "path": "/blob",
            "value": "AAEC",
            "expect_error": "DeviceDisconnectedError",
        },
        # The SDK's own validation still runs on what cannot be coerced.
        {
            "action": "send",
            "interface": iface,
            "path": "/s1/value",
            "value": "not a number",
            "timestamp": 0,
            "expect_error": "ValidationError",
        },
        {
            "action": "set_property",
            "interface": SERVER_INTERFACE["interface_name"],
            "path": "/level",
            "value": 1,
            "expect_error": "ValidationError",
        },
        {"action": "wait_connected", "timeout": 0.2, "expect_error": "ActionTimeout"},
        {"action": "sleep", "seconds": 0},
    ]
    result = run_scenario(sdk_python, scenario(tmp_path, interfaces_dir, actions), timeout=60)
    assert_json_lines(result)
    errors = result.of("error")
    assert [e["error"] for e in errors] == [
        "DeviceDisconnectedError",
        "DeviceDisconnectedError",
        "ValidationError",
        "ValidationError",
        "ActionTimeout",
    ], result.events
    assert all(e["expected"] for e in errors)
    assert [e["index"] for e in result.of("ok")] == [5]
    assert result.of("finished")[0]["ok"] is True
    assert result.returncode == 0


def test_driver_rejects_malformed_scenario(sdk_python: Path, tmp_path: Path) -> None:
    result = run_scenario(sdk_python, {"realm": "smoke", "actions": []}, timeout=60)
    assert_json_lines(result)
    error = result.of("error")[0]
    assert error["action"] == "scenario"
    assert "missing scenario field" in error["message"]
    assert result.returncode == 2
