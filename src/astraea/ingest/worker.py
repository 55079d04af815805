"""An ingest worker: consumes its share of the device stream and acts on what ingestion made
of each message.

A batch from the bus is handled by `Ingestor.process`, which returns once the values, device
state and trigger deliveries of every message are durable; only then does the handler return
and the bus acknowledge the batch. What follows needs no durability and happens before that
return, so that with the in-process bus a device is already disconnected when its rejected
message would be acknowledged:
- devices are told what ingestion answered (emptyCache's properties) and rejected devices
  are disconnected, through the node that carried their message; one device's commands go out
  in order, different devices' at once;
- the triggers role is told which deliveries were queued (a broadcast; it also polls).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from astraea.bus.base import Bus, Subscription
from astraea.bus.device_commands import DeviceCommands
from astraea.bus.messages import (
    BroadcastMessage,
    DeliveriesQueued,
    DeviceMessage,
    DisconnectCause,
    Published,
    TriggersChanged,
)
from astraea.core.trigger_deliveries import QueuedDelivery
from astraea.ingest.ingestor import Ingestor
from astraea.ingest.messages import DevicePublish, Outcome
from astraea.ingest.metrics import IngestMetrics
from astraea.ingest.trigger_matching import TriggerMatcher

logger = logging.getLogger(__name__)

_Command = Callable[[], Awaitable[object]]


class IngestWorker:
    def __init__(
        self,
        ingestor: Ingestor,
        matcher: TriggerMatcher,
        bus: Bus,
        commands: DeviceCommands,
        metrics: IngestMetrics,
    ) -> None:
        self._ingestor = ingestor
        self._matcher = matcher
        self._bus = bus
        self._commands = commands
        self._metrics = metrics
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self._bus.subscribe(self._on_broadcast)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.cancel()
            self._subscription = None

    async def handle(self, batch: Sequence[DeviceMessage]) -> None:
        started = time.perf_counter()
        try:
            outcomes = await self._ingestor.process(batch)
        finally:
            self._metrics.observe_batch(len(batch), time.perf_counter() - started)
        commands: dict[tuple[str, str], list[_Command]] = defaultdict(list)
        queued: dict[tuple[str, str], list[QueuedDelivery]] = defaultdict(list)
        for message, outcome in zip(batch, outcomes, strict=True):
            if isinstance(message.kind, Published):
                self._metrics.record(message.realm, len(message.kind.payload), outcome)
            device_commands = self._commands_of(message, outcome)
            if device_commands:
                commands[(message.realm, message.device_id)].extend(device_commands)
            for policy, row in outcome.queued:
                queued[(message.realm, policy)].append(row)
        for (realm, policy), rows in queued.items():
            try:
                await self._bus.broadcast(DeliveriesQueued(realm, policy, tuple(rows)))
            except Exception:  # the deliveries are stored: the triggers role polls for them
                logger.exception("could not announce deliveries queued in %s/%s", realm, policy)
        if commands:
            await asyncio.gather(*(_in_order(sequence) for sequence in commands.values()))

    def _commands_of(self, message: DeviceMessage, outcome: Outcome) -> list[_Command]:
        node = message.node or None
        found: list[_Command] = [
            partial(self._commands.publish, *_target(p), p.payload, p.qos, node=node)
            for p in outcome.publishes
        ]
        if outcome.disconnect:
            cause = DisconnectCause.REJECTED
            found.append(
                partial(
                    self._commands.disconnect, message.realm, message.device_id, cause, node=node
                )
            )
        return found

    async def _on_broadcast(self, message: BroadcastMessage) -> None:
        if isinstance(message, TriggersChanged):
            self._matcher.invalidate(message.realm)


def _target(publish: DevicePublish) -> tuple[str, str, str]:
    return publish.realm, publish.device_id, publish.topic


async def _in_order(commands: list[_Command]) -> None:
    for command in commands:
        try:
            await command()
        except Exception:  # the device learns at its next connection (emptyCache)
            logger.exception("a command to a device failed")
