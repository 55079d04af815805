"""Real HTTP receivers for trigger delivery tests, and small builders of triggers and events.

A `Receiver` is a uvicorn server on a free port (plain or TLS) that records every request and
answers each path with a scripted sequence of status codes, optionally after a delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from astraea.bus.base import Bus
from astraea.bus.messages import DeliveriesQueued
from astraea.core.simple_event_codec import encode_simple_event
from astraea.core.trigger_actions import Action, HttpAction
from astraea.core.trigger_deliveries import NewDelivery, queue_of
from astraea.core.trigger_events import DeviceConnected, Event, SimpleEvent, event_type
from astraea.core.trigger_policies import Policy
from astraea.storage.base import QueuedDelivery, Storage
from astraea.triggers.engine import EngineSettings, TriggerEngine

AMQP_URL = os.environ.get("ASTRAEA_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

# Fast retries and expiry checks, so policy tests take milliseconds.
FAST = EngineSettings(
    amqp_url=AMQP_URL,
    http_timeout=2.0,
    amqp_timeout=5.0,
    retry_delay=0.01,
    max_retry_delay=0.05,
    expiry_interval=0.05,
)

EngineFactory = Callable[..., Awaitable["Harness"]]

DEVICE = "ydqBlFsGQ--xZ-_efQxuLw"
OTHER_DEVICE = "f0VMRgIBAQAAAAAAAAAAAA"


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    at: float

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


@dataclass
class _Script:
    statuses: list[int]
    delay: float = 0.0
    served: int = 0


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._scripts: dict[str, _Script] = {}
        self._arrived = asyncio.Condition()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.base_url = ""

    def respond(self, path: str, *statuses: int, delay: float = 0.0) -> str:
        """Answer `path` with these statuses in turn (the last one repeats); returns its URL."""
        self._scripts[path] = _Script(list(statuses) or [200], delay)
        return self.base_url + path

    def url(self, path: str) -> str:
        return self.base_url + path

    def at(self, path: str) -> list[Received]:
        return [request for request in self.requests if request.path == path]

    async def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[Received]:
        async def enough() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.at(path)) >= count)

        await asyncio.wait_for(enough(), timeout)
        return self.at(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        received = Received(
            request.method,
            request.url.path,
            [(key.decode(), value.decode()) for key, value in scope["headers"]],
            body,
            time.monotonic(),
        )
        script = self._scripts.get(received.path, _Script([200]))
        status = script.statuses[min(script.served, len(script.statuses) - 1)]
        script.served += 1
        async with self._arrived:
            self.requests.append(received)
            self._arrived.notify_all()
        if script.delay:
            await asyncio.sleep(script.delay)
        await Response(status_code=status)(scope, receive, send)

    async def start(self, tls: tuple[Path, Path] | None = None) -> None:
        config = uvicorn.Config(
            self,
            host="127.0.0.1",
            port=0,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
            ssl_certfile=None if tls is None else str(tls[0]),
            ssl_keyfile=None if tls is None else str(tls[1]),
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def refused_url() -> str:
    """A URL on a port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/refused"


@dataclass(frozen=True)
class FakeTrigger:
    name: str
    action: Action
    trigger_id: uuid.UUID = field(default_factory=uuid.uuid4)


def http_trigger(url: str, name: str = "trigger", **action: object) -> FakeTrigger:
    return FakeTrigger(name, HttpAction(url=url, method="post", **action))


_timestamps = itertools.count(1_700_000_000_000)


def event_for(
    trigger: FakeTrigger,
    event: Event | None = None,
    *,
    device_id: str = DEVICE,
    realm: str = "test",
) -> SimpleEvent:
    return SimpleEvent(
        realm=realm,
        device_id=device_id,
        timestamp_ms=next(_timestamps),
        simple_trigger_id=uuid.uuid5(trigger.trigger_id, "0"),
        parent_trigger_id=trigger.trigger_id,
        event=event or DeviceConnected("10.0.0.1"),
    )


class Directory:
    """A `TriggerDirectory` over dicts, standing in for storage's triggers and policies."""

    def __init__(self) -> None:
        self.triggers: dict[tuple[str, uuid.UUID], FakeTrigger] = {}
        self.policies: dict[tuple[str, str], Policy] = {}

    def add(self, trigger: FakeTrigger, realm: str = "test") -> FakeTrigger:
        self.triggers[(realm, trigger.trigger_id)] = trigger
        return trigger

    async def find_trigger(self, realm: str, trigger_id: uuid.UUID) -> FakeTrigger | None:
        return self.triggers.get((realm, trigger_id))

    async def find_policy(self, realm: str, name: str) -> Policy | None:
        return self.policies.get((realm, name))


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Waits until `check()` holds; for effects with no event to wait on (metrics, storage)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def eventually_async(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


Submission = tuple["FakeTrigger", Policy | None, SimpleEvent]


@dataclass
class Harness:
    """An engine, and what ingestion does for it: matched events stored in their queue (one
    transaction per `submit`), then announced on the bus."""

    engine: TriggerEngine
    storage: Storage
    bus: Bus
    directory: Directory

    async def submit(self, trigger: FakeTrigger, policy: Policy | None, event: SimpleEvent) -> None:
        await self.submit_all([(trigger, policy, event)])

    async def submit_all(self, submissions: list[Submission]) -> None:
        deliveries = []
        for trigger, policy, event in submissions:
            self.directory.add(trigger, event.realm)
            if policy is not None:
                self.directory.policies[(event.realm, policy.name)] = policy
            deliveries.append(new_delivery(trigger, policy, event))
        stored = await self.storage.delivery_queue.enqueue(deliveries)
        by_queue: dict[tuple[str, str], list[QueuedDelivery]] = {}
        for new, row in zip(deliveries, stored, strict=True):
            if row is not None:
                by_queue.setdefault((new.realm, new.policy), []).append(row)
        for (realm, policy_name), rows in by_queue.items():
            await self.bus.broadcast(DeliveriesQueued(realm, policy_name, tuple(rows)))


def new_delivery(trigger: FakeTrigger, policy: Policy | None, event: SimpleEvent) -> NewDelivery:
    """The delivery ingestion stores for a matched event (`TriggerMatcher.deliveries`)."""
    queue, ttl = queue_of(trigger.action, policy)
    now = time.time_ns() // 1_000_000
    return NewDelivery(
        realm=event.realm,
        policy=queue,
        device_id=event.device_id,
        trigger_id=event.parent_trigger_id,
        simple_trigger_id=event.simple_trigger_id,
        event_type=event_type(event.event),
        event=encode_simple_event(event),
        enqueued_at=now,
        expires_at=None if ttl is None else now + ttl,
    )
