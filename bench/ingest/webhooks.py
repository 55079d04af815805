"""The trigger side of the ingest benchmark: an HTTP trigger matching a share of the messages,
and the webhook receiver that times each event against its message's publish time.

Message `i` carries the value `i` (see `loadgen`), so the trigger `incoming_data` with
`value < share * total` matches exactly the first `share` of the message ids, spread evenly
over the run because every device publishes at the same pace. The event's `value` names the
message, so publish -> webhook-received latency is exact per event, and so are loss and
duplicates. Times are `time.perf_counter_ns()` (CLOCK_MONOTONIC), shared with the generators.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn
from astraea_side import INTERFACE, REALM, SENSOR_PATH
from measure import free_port

TRIGGER_NAME = "bench_webhook"

Scope = dict[str, Any]
Receive = Any
Send = Any


def matching_ids(total: int, share: float) -> int:
    """How many message ids (0 .. n-1) the trigger matches."""
    return min(total, round(total * share))


def trigger_document(url: str, matched: int) -> dict[str, Any]:
    """`incoming_data` on the benchmark path for values below `matched`, posting to `url`."""
    return {
        "name": TRIGGER_NAME,
        "action": {"http_url": url, "http_method": "post"},
        "simple_triggers": [
            {
                "type": "data_trigger",
                "on": "incoming_data",
                "interface_name": INTERFACE,
                "interface_major": 1,
                "match_path": SENSOR_PATH,
                "value_match_operator": "<",
                "known_value": float(matched),
            }
        ],
    }


async def install_trigger(base_url: str, token: str, url: str, matched: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=headers) as http:
        response = await http.post(
            f"/realmmanagement/v1/{REALM}/triggers",
            json={"data": trigger_document(url, matched)},
        )
        if response.status_code != 201:
            raise RuntimeError(
                f"installing the trigger answered {response.status_code}: {response.text[:300]}"
            )


@dataclass
class WebhookSink:
    """An ASGI app served by uvicorn in the benchmark's own loop; records one arrival per id."""

    total: int
    recv_ns: array[int] = field(init=False)
    received: int = 0
    duplicates: int = 0
    foreign: int = 0
    first_ns: int = 0
    last_ns: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    port: int = field(default_factory=free_port)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.recv_ns = array("q", bytes(8 * self.total))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{TRIGGER_NAME}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self._record(time.perf_counter_ns(), scope, body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def _record(self, now: int, scope: Scope, body: bytes) -> None:
        headers = dict(scope["headers"])
        if headers.get(b"astarte-realm") != REALM.encode():
            self.problems["wrong Astarte-Realm header"] += 1
        try:
            document = orjson.loads(body)
            event = document["event"]
            index = int(event["value"])
        except (ValueError, KeyError, TypeError):
            self.problems["unreadable body"] += 1
            return
        if document.get("trigger_name") != TRIGGER_NAME or event.get("type") != "incoming_data":
            self.problems["unexpected event"] += 1
        if not 0 <= index < self.total:
            self.foreign += 1
            return
        if self.recv_ns[index]:
            self.duplicates += 1
            return
        self.recv_ns[index] = now
        self.received += 1
        self.first_ns = self.first_ns or now
        self.last_ns = now

    async def start(self) -> None:
        config = uvicorn.Config(
            self,
            host="127.0.0.1",
            port=self.port,
            lifespan="off",
            log_level="warning",
            access_log=False,
            loop="none",
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def settle(self, expected: int, idle: float) -> None:
        """Until every matched event arrived, or none came for `idle` seconds."""
        changed, seen = time.monotonic(), self.received
        while self.received < expected and time.monotonic() - changed < idle:
            await asyncio.sleep(0.02)
            if self.received != seen:
                changed, seen = time.monotonic(), self.received

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
