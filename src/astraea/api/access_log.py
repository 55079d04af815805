"""One structured log line per HTTP request (logger `astraea.access`): method, path, status,
duration and realm, as `key=value` pairs in the message and as record attributes (`extra`)
for handlers that format records as JSON."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from astraea.core.logfmt import logfmt

logger = logging.getLogger("astraea.access")

# API sets whose third path segment is the realm: /<api>/v1/<realm>/…
_REALM_SCOPED = frozenset({"appengine", "realmmanagement", "pairing"})


def realm_of(path: str) -> str | None:
    """The realm a request addresses, read from its path (None for Housekeeping and the
    root routes)."""
    parts = path.strip("/").split("/", 3)
    if len(parts) >= 3 and parts[0] in _REALM_SCOPED and parts[1] == "v1" and parts[2]:
        return parts[2]
    return None


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        status = 500  # unless the application answers
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path: str = scope["path"]
            fields = {
                "method": scope["method"],
                "path": path,
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "realm": realm_of(path),
            }
            logger.info("%s", logfmt(fields), extra=fields)
