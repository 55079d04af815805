"""End-to-end fixtures: a platform with its MQTT transport, a realm with test interfaces,
and the official device SDK in its own virtual environment."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from astraea.core.device_id import random_device_id
from astraea.platform import Platform
from tests.conftest import KeyPair, platform_settings

sys.path.insert(0, str(Path(__file__).parents[1] / "sdk"))
from sdk_venv import ensure_sdk_venv

REPO = Path(__file__).parents[2]

INTERFACES: list[dict[str, Any]] = [
    {
        "interface_name": "org.astraea.e2e.DeviceValues",
        "version_major": 1,
        "version_minor": 0,
        "type": "datastream",
        "ownership": "device",
        "mappings": [
            {
                "endpoint": "/%{sensor}/value",
                "type": "double",
                "reliability": "guaranteed",
                "explicit_timestamp": True,
            }
        ],
    },
    {
        "interface_name": "org.astraea.e2e.DeviceAggregate",
        "version_major": 1,
        "version_minor": 0,
        "type": "datastream",
        "ownership": "device",
        "aggregation": "object",
        "mappings": [
            {"endpoint": "/%{room}/temperature", "type": "double", "reliability": "guaranteed"},
            {"endpoint": "/%{room}/label", "type": "string", "reliability": "guaranteed"},
        ],
    },
    {
        "interface_name": "org.astraea.e2e.DeviceProps",
        "version_major": 1,
        "version_minor": 0,
        "type": "properties",
        "ownership": "device",
        "mappings": [{"endpoint": "/%{key}/name", "type": "string", "allow_unset": True}],
    },
    {
        "interface_name": "org.astraea.e2e.ServerCommands",
        "version_major": 1,
        "version_minor": 0,
        "type": "datastream",
        "ownership": "server",
        "mappings": [{"endpoint": "/command", "type": "string", "reliability": "unique"}],
    },
    {
        "interface_name": "org.astraea.e2e.ServerProps",
        "version_major": 1,
        "version_minor": 0,
        "type": "properties",
        "ownership": "server",
        "mappings": [{"endpoint": "/%{key}/level", "type": "double", "allow_unset": True}],
    },
]


@dataclass
class DeviceSetup:
    platform: Platform
    http: httpx.AsyncClient
    realm: str
    device_id: str
    secret: str
    appengine: dict[str, str]
    scenario_base: dict[str, Any]
    sdk_python: Path

    def scenario(self, *actions: dict[str, Any]) -> dict[str, Any]:
        return {**self.scenario_base, "actions": list(actions)}

    def values_url(self, interface: str, path: str = "") -> str:
        return f"/appengine/v1/{self.realm}/devices/{self.device_id}/interfaces/{interface}{path}"


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    return ensure_sdk_venv(REPO)


@pytest.fixture
async def device(
    tmp_path: Path,
    housekeeping_keys: KeyPair,
    realm_keys: KeyPair,
    sdk_python: Path,
) -> AsyncIterator[DeviceSetup]:
    platform = Platform(platform_settings(tmp_path / "data", housekeeping_keys))
    await platform.start()
    base = f"http://127.0.0.1:{platform.http_port}"
    interfaces_dir = tmp_path / "interfaces"
    interfaces_dir.mkdir()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            created = await http.post(
                "/housekeeping/v1/realms",
                json={"data": {"realm_name": "e2e", "jwt_public_key_pem": realm_keys.public_pem}},
                headers=housekeeping_keys.headers("housekeeping"),
            )
            assert created.status_code == 201, created.text
            rm = realm_keys.headers("realm-management")
            for interface in INTERFACES:
                (interfaces_dir / f"{interface['interface_name']}.json").write_text(
                    json.dumps(interface)
                )
                response = await http.post(
                    "/realmmanagement/v1/e2e/interfaces", json={"data": interface}, headers=rm
                )
                assert response.status_code == 201, response.text
            device_id = random_device_id()
            registered = await http.post(
                "/pairing/v1/e2e/agent/devices",
                json={"data": {"hw_id": device_id}},
                headers=realm_keys.headers("pairing"),
            )
            assert registered.status_code == 201, registered.text
            secret = registered.json()["data"]["credentials_secret"]
            assert platform.keys is not None
            yield DeviceSetup(
                platform=platform,
                http=http,
                realm="e2e",
                device_id=device_id,
                secret=secret,
                appengine=realm_keys.headers("appengine"),
                scenario_base={
                    "pairing_base_url": f"{base}/pairing",
                    "realm": "e2e",
                    "device_id": device_id,
                    "credentials_secret": secret,
                    "interfaces_dir": str(interfaces_dir),
                    "persistency_dir": str(tmp_path / "persistency"),
                    "ca_file": str(platform.keys.mqtt_tls_cert),
                },
                sdk_python=sdk_python,
            )
    finally:
        await platform.stop()
