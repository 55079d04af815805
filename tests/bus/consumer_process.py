"""A consumer process for the crash tests: `python consumer_process.py URL NAME RECORDS STATUS`.

Consumes the test stream with a RabbitMqBus and, before its handler returns for a batch (so
before the batch is acknowledged), appends a line `monotonic-time name key number` per message
to RECORDS: what a killed process had handled is all there, acknowledged or not. Writes the
shards it consumes to STATUS (replaced atomically) every 50 ms. Stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bus_support import STREAM, key_of, number_of

from astraea.bus.messages import DeviceMessage
from astraea.bus.rabbitmq import RabbitMqBus


async def main(url: str, name: str, records: Path, status: Path) -> None:
    bus = RabbitMqBus(url, name)
    await bus.start()
    fd = os.open(records, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    async def handler(batch: Sequence[DeviceMessage]) -> None:
        now = time.monotonic()
        lines = "".join(f"{now} {name} {key_of(m)} {number_of(m)}\n" for m in batch)
        os.write(fd, lines.encode())
        await asyncio.sleep(0.01)  # a store's commit: a kill is likely to find a batch in hand

    await bus.consume(STREAM, handler, max_batch=50)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    partial = status.with_suffix(".partial")
    while not stopping.is_set():
        partial.write_text(json.dumps(sorted(bus.shards(STREAM))))
        partial.replace(status)
        await asyncio.sleep(0.05)
    await bus.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])))
