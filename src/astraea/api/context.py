"""What every API handler needs, built once per process by the runtime."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from astraea.bus.base import Bus
from astraea.bus.device_commands import DeviceCommands
from astraea.pairing.ca import CertificateAuthority
from astraea.storage.base import Storage


@dataclass(slots=True)
class ApiSettings:
    housekeeping_public_key_pem: str
    # What Pairing tells devices to connect to; the official SDKs need an explicit port in it.
    broker_url: str
    disable_auth: bool = False
    enable_realm_deletion: bool = False
    # Cap on the samples one AppEngine GET returns (Astarte's APPENGINE_API_MAX_RESULTS_LIMIT).
    appengine_max_results_limit: int = 10_000


@dataclass(slots=True)
class ApiContext:
    storage: Storage
    settings: ApiSettings
    ca: CertificateAuthority
    bus: Bus
    commands: DeviceCommands


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context
