"""Prometheus metrics of the HTTP layer, on a registry owned by the running platform."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "astraea_http_requests",
            "HTTP requests served, by API set and status code.",
            ["api", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "astraea_http_request_duration_seconds",
            "Time to answer an HTTP request, by API set.",
            ["api"],
            registry=registry,
        )


class MetricsMiddleware:
    """Counts every request by its first path segment (the API set), never by full path,
    so label cardinality stays bounded whatever clients request."""

    _KNOWN = frozenset({"appengine", "realmmanagement", "housekeeping", "pairing", "health"})

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        first = scope["path"].strip("/").split("/", 1)[0]
        api = first if first in self._KNOWN else "other"
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(api, str(status)).inc()
            self.metrics.latency.labels(api).observe(time.perf_counter() - started)
