"""Root endpoints of the platform process, and what survives a restart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from tests.conftest import KeyPair, platform_settings

from astraea.core.device_id import random_device_id
from astraea.platform import Platform


async def test_health_version_metrics_docs(http: httpx.AsyncClient, platform: Platform) -> None:
    for path in ("/health", "/appengine/health", "/pairing/health", "/housekeeping/health"):
        assert (await http.get(path)).status_code == 200
    assert (await http.get("/version")).json() == {"data": "0.1.0"}
    assert (await http.get("/realmmanagement/version")).json() == {"data": "0.1.0"}
    await http.get("/housekeeping/v1/realms")
    metrics = await http.get("/metrics")
    assert metrics.status_code == 200
    assert 'astraea_http_requests_total{api="housekeeping",status="401"}' in metrics.text
    docs = await http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = (await http.get("/openapi.json")).json()
    assert "/housekeeping/v1/realms" in spec["paths"]
    assert "/realmmanagement/v1/{realm_name}/interfaces" in spec["paths"]


async def test_health_is_503_while_stopping(http: httpx.AsyncClient, platform: Platform) -> None:
    platform.request_stop()
    assert (await http.get("/health")).status_code == 503


async def test_everything_survives_a_restart(
    tmp_path: Path, housekeeping_keys: KeyPair, realm_keys: KeyPair
) -> None:
    settings = platform_settings(tmp_path / "data", housekeeping_keys)
    interface = {
        "interface_name": "org.example.Props",
        "version_major": 1,
        "version_minor": 0,
        "type": "properties",
        "ownership": "server",
        "mappings": [{"endpoint": "/enabled", "type": "boolean", "allow_unset": True}],
    }
    hk = housekeeping_keys.headers("housekeeping")
    rm = realm_keys.headers("realm-management")
    first = Platform(settings)
    await first.start()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{first.http_port}") as http:
        await http.post(
            "/housekeeping/v1/realms",
            json={"data": {"realm_name": "keep", "jwt_public_key_pem": realm_keys.public_pem}},
            headers=hk,
        )
        installed = await http.post(
            "/realmmanagement/v1/keep/interfaces", json={"data": interface}, headers=rm
        )
        assert installed.status_code == 201
    await first.stop()

    second = Platform(settings)
    await second.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{second.http_port}") as http:
            assert (await http.get("/housekeeping/v1/realms", headers=hk)).json() == {
                "data": ["keep"]
            }
            got = await http.get(
                "/realmmanagement/v1/keep/interfaces/org.example.Props/1", headers=rm
            )
            assert got.json() == {"data": interface}
    finally:
        await second.stop()


async def test_realm_deletion_when_enabled(
    tmp_path: Path, housekeeping_keys: KeyPair, realm_keys: KeyPair
) -> None:
    settings = platform_settings(tmp_path / "data", housekeeping_keys, enable_realm_deletion=True)
    platform = Platform(settings)
    await platform.start()
    hk = housekeeping_keys.headers("housekeeping")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.http_port}") as http:
            await http.post(
                "/housekeeping/v1/realms",
                json={"data": {"realm_name": "gone", "jwt_public_key_pem": realm_keys.public_pem}},
                headers=hk,
            )
            storage = platform.storage
            assert storage is not None
            device = random_device_id()
            now = datetime.now(UTC)
            await storage.devices.register("gone", device, "hash", {}, now)
            await storage.devices.mark_connected("gone", device, "127.0.0.1", now)
            refused = await http.delete("/housekeeping/v1/realms/gone", headers=hk)
            assert refused.status_code == 422
            assert refused.json() == {
                "errors": {"detail": "Realm still contains connected devices"}
            }
            await storage.devices.mark_disconnected("gone", device, now)
            deleted = await http.delete("/housekeeping/v1/realms/gone", headers=hk)
            assert deleted.status_code == 204
            assert (await http.get("/housekeeping/v1/realms/gone", headers=hk)).status_code == 404
            assert (
                await http.delete("/housekeeping/v1/realms/gone", headers=hk)
            ).status_code == 404
            rm = await http.get(
                "/realmmanagement/v1/gone/interfaces",
                headers=realm_keys.headers("realm-management"),
            )
            assert rm.status_code == 403
    finally:
        await platform.stop()
