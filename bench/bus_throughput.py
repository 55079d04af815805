"""Throughput of the RabbitMQ bus: confirmed publishes, and publish -> handler.

    .venv/bin/python bench/bus_throughput.py [--publishers 1000] [--messages 20] [--loop uvloop]

Needs RabbitMQ on 127.0.0.1:5672 with its management plugin (each phase runs on a vhost of
its own, deleted after). Messages are `DeviceMessage`s of 100 bytes once encoded.

- publish: `--publishers` tasks each publish `--messages` messages one after the other (each
  awaited: returns once the broker confirmed it on its durable queue), all at once; no
  consumer. Reported: confirmed msg/s, and this process's CPU time per message.
- end to end: the same load with one consumer (`max_batch` 512) in the same process and
  event loop; from the first publish until the handler has been handed every message.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

from astraea.bus import messages
from astraea.bus.base import Stream, device_key
from astraea.bus.messages import DeviceMessage, Published
from astraea.bus.rabbitmq import RabbitMqBus

# One vhost per phase, made as for the bus tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "bus"))
from rabbitmq_support import broker_vhost

STREAM = Stream("device_messages", DeviceMessage)
SIZE = 100


def message(device: int) -> DeviceMessage:
    """A Published of device `device` whose encoding is SIZE bytes."""
    draft = DeviceMessage(
        "bench", f"device-{device:06d}", Published("/x", b"", 1), datetime.now(UTC)
    )
    padding = SIZE - len(messages.encode(draft))
    return DeviceMessage(
        draft.realm, draft.device_id, Published("/x", b"p" * padding, 1), draft.received_at
    )


async def publish_load(bus: RabbitMqBus, publishers: int, count: int) -> None:
    async def publisher(device: int) -> None:
        sent = message(device)
        key = device_key(sent.realm, sent.device_id)
        for _ in range(count):
            await bus.publish(STREAM, key, sent)

    await asyncio.gather(*(publisher(device) for device in range(publishers)))


async def measure_publish(publishers: int, count: int) -> tuple[float, float]:
    """Confirmed msg/s and CPU us per message."""
    async with broker_vhost() as broker:
        bus = RabbitMqBus(broker.url, "bench")
        await bus.start()
        try:
            await publish_load(bus, 10, 1)  # declares the stream's queues
            started, cpu = time.perf_counter(), time.process_time()
            await publish_load(bus, publishers, count)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            await bus.close()
    total = publishers * count
    return total / elapsed, cpu / total * 1e6


async def measure_end_to_end(publishers: int, count: int) -> tuple[float, float]:
    """msg/s from the first publish to the last message handed over, and the mean batch."""
    total = publishers * count
    async with broker_vhost() as broker:
        bus = RabbitMqBus(broker.url, "bench")
        await bus.start()
        handed = 0
        batches = 0
        all_handed = asyncio.Event()

        async def handler(batch: Sequence[DeviceMessage]) -> None:
            nonlocal handed, batches
            handed += len(batch)
            batches += 1
            if handed >= total:
                all_handed.set()

        try:
            await bus.consume(STREAM, handler)
            await asyncio.sleep(1)  # the consumer takes its shards
            started = time.perf_counter()
            await publish_load(bus, publishers, count)
            await all_handed.wait()
            elapsed = time.perf_counter() - started
        finally:
            await bus.close()
    return total / elapsed, handed / batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publishers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20, help="per publisher")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    run: Callable[[Coroutine[Any, Any, tuple[float, float]]], tuple[float, float]]
    run = uvloop.run if args.loop == "uvloop" else asyncio.run
    total = args.publishers * args.messages
    print(f"{args.publishers} publishers x {args.messages} messages of {SIZE} B, {args.loop}")
    rate, cpu = run(measure_publish(args.publishers, args.messages))
    print(f"publish:     {rate:8.0f} msg/s confirmed ({total} msgs), {cpu:.0f} us CPU per message")
    rate, batch = run(measure_end_to_end(args.publishers, args.messages))
    print(f"end to end:  {rate:8.0f} msg/s publish -> handler, mean batch {batch:.0f}")


if __name__ == "__main__":
    main()
