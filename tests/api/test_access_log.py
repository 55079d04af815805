"""The access log: one structured line per HTTP request, whatever the client sends."""

from __future__ import annotations

import logging

import httpx
import pytest

from astraea.platform import Platform


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "astraea.access"]


async def test_each_request_is_logged_with_status_realm_and_duration(
    http: httpx.AsyncClient, platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "astraea.access")
    await http.get("/appengine/v1/somerealm/devices")
    await http.get("/housekeeping/v1/realms")
    await http.get('/appengine/v1/x/devices/a b" status=200')
    first, second, forged = _access_lines(caplog)
    assert first.getMessage().startswith(
        "method=GET path=/appengine/v1/somerealm/devices status=401 duration_ms="
    )
    assert first.getMessage().endswith(" realm=somerealm")
    assert first.__dict__["realm"] == "somerealm" and first.__dict__["duration_ms"] >= 0
    assert second.getMessage().endswith(" realm=-")
    # a path cannot forge fields: it is quoted whole
    assert 'path="/appengine/v1/x/devices/a b\\" status=200" status=401' in forged.getMessage()


async def test_nothing_is_logged_above_info(
    http: httpx.AsyncClient, platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "astraea.access")
    await http.get("/health")
    assert _access_lines(caplog) == []
