"""Assembles every API set into the one ASGI app served on the platform's HTTP port."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from astraea import __version__
from astraea.api import (
    appengine_devices,
    appengine_values,
    housekeeping,
    pairing,
    realm_management,
    realm_management_triggers,
)
from astraea.api.access_log import AccessLogMiddleware
from astraea.api.body import DEFAULT_MAX_BODY_BYTES
from astraea.api.context import ApiContext
from astraea.api.errors import install_error_handlers
from astraea.api.metrics import HttpMetrics, MetricsMiddleware
from astraea.api.responses import JsonResponse

API_SETS = ("appengine", "realmmanagement", "housekeeping", "pairing")
_ROUTERS = (
    housekeeping,
    realm_management,
    realm_management_triggers,
    appengine_devices,
    appengine_values,
    pairing,
)


def create_app(
    context: ApiContext | None,
    *,
    registry: CollectorRegistry,
    is_ready: Callable[[], bool],
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """`is_ready` decides /health: 200 only while every component of the process is ready.
    Without `context` (a process without the `api` role) only health, version and metrics."""
    app = FastAPI(
        title="Astraea",
        version=__version__,
        description="Astarte-compatible IoT data platform: Housekeeping, Realm Management, "
        "AppEngine and Pairing APIs.",
        default_response_class=JsonResponse,
    )
    app.state.context = context
    app.state.max_body_bytes = max_body_bytes
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=HttpMetrics(registry))
    app.add_middleware(AccessLogMiddleware)
    if context is not None:
        for api_set in _ROUTERS:
            app.include_router(api_set.router)

    async def health() -> Response:
        return Response(status_code=200 if is_ready() else 503)

    async def version() -> JsonResponse:
        return JsonResponse({"data": __version__})

    for prefix in ("", *(f"/{api}" for api in API_SETS)):
        app.add_api_route(f"{prefix}/health", health, methods=["GET"], include_in_schema=False)
        app.add_api_route(f"{prefix}/version", version, methods=["GET"], include_in_schema=False)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
