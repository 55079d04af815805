"""What every API handler needs, built once per process by the runtime."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from astraea.storage.base import Storage


@dataclass(slots=True)
class ApiSettings:
    housekeeping_public_key_pem: str
    disable_auth: bool = False
    enable_realm_deletion: bool = False


@dataclass(slots=True)
class ApiContext:
    storage: Storage
    settings: ApiSettings


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context
