"""HTTP actions: the request Astarte's trigger engine sends, and sending it.

`build_request` is pure; `HttpDeliverer` sends and reduces the result to a status code, with
connection failures (refused, TLS, timeout) reported as 503 like Astarte, so that delivery
policies handle them as server errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import chevron
import orjson

from astraea.core.trigger_actions import HttpAction
from astraea.core.trigger_events import SimpleEvent, default_http_body, mustache_context

CONNECTION_FAILED = 503
MAX_DRAINED_BODY = 64 * 1024


class UndeliverableError(Exception):
    """No attempt can ever deliver this event (e.g. its template does not render)."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str  # upper case
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def build_request(action: HttpAction, event: SimpleEvent, trigger_name: str) -> HttpRequest:
    """Static headers first, then `Astarte-Realm` and `Content-Type`, as Astarte orders them."""
    if action.uses_mustache:
        try:
            text: str = chevron.render(action.template, mustache_context(event, trigger_name))
        except (chevron.ChevronError, ValueError) as error:
            raise UndeliverableError(f"the Mustache template does not render: {error}") from error
        body, content_type = text.encode(), "text/plain"
    else:
        body = orjson.dumps(default_http_body(event, trigger_name))
        content_type = "application/json"
    headers = (
        *action.static_headers,
        ("Astarte-Realm", event.realm),
        ("Content-Type", content_type),
    )
    return HttpRequest(action.method.upper(), action.url, headers, body)


class HttpDeliverer:
    """Two connection pools: one verifying TLS peers and one for `ignore_ssl_errors` actions.

    aiohttp rather than httpx: with 64 deliveries in flight, httpx's pool checks every pooled
    connection on each request, about 2.3 ms of CPU per request against aiohttp's 0.1 ms
    (measured side by side), and the trigger engine shares its core with ingestion.
    Pools are not bounded: each queue bounds its own concurrency, and a shared bound would let
    a slow receiver hold the connections every other receiver needs. Create it inside the
    event loop that will use it.
    """

    def __init__(self, timeout: float) -> None:
        timeouts = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
        )
        self._verifying = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=timeouts
        )
        self._trusting = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ssl=False), timeout=timeouts
        )

    async def deliver(self, action: HttpAction, event: SimpleEvent, trigger_name: str) -> int:
        """The response status, or `CONNECTION_FAILED`.

        A small response body is drained so that the connection can serve the next request;
        past `MAX_DRAINED_BODY` the connection is dropped instead of reading on.
        """
        request = build_request(action, event, trigger_name)
        session = self._trusting if action.ignore_ssl_errors else self._verifying
        try:
            async with session.request(
                request.method,
                request.url,
                headers=list(request.headers),
                data=request.body,
                allow_redirects=False,
            ) as response:
                drained = 0
                async for chunk in response.content.iter_any():
                    drained += len(chunk)
                    if drained > MAX_DRAINED_BODY:
                        response.close()
                        break
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return CONNECTION_FAILED
        except (UnicodeError, ValueError) as error:  # a static header HTTP cannot carry
            raise UndeliverableError(f"the request cannot be encoded: {error}") from error

    async def close(self) -> None:
        await self._verifying.close()
        await self._trusting.close()
