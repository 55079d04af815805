"""Micro-benchmark: samples per second through `Ingestor.process` on a real SQLite file.

Each batch holds 256 individual datastream messages (a double on `/<sensor>/value`) spread
over many devices, as the transport's group commit would hand them over. The database runs
with the production settings (WAL, synchronous=FULL), so every batch pays its fsyncs.

    .venv/bin/python bench/ingest_pipeline.py [--batches 200] [--devices 64] [--dir PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bson

from astraea.core.device_id import random_device_id
from astraea.core.interface_parser import parse_interface
from astraea.ingest import DeviceMessage, Ingestor, Published
from astraea.storage import open_storage
from astraea.storage.base import Realm

REALM = "bench"
INTERFACE = "org.astraea.bench.Sensors"
BATCH_SIZE = 256
SENSORS = 4


async def run(batches: int, devices: int, folder: Path) -> None:
    storage = await open_storage(f"sqlite://{folder / 'bench.db'}")
    try:
        await storage.realms.create(Realm(name=REALM, jwt_public_key_pem="pem"))
        await storage.interfaces.install(
            REALM,
            parse_interface(
                {
                    "interface_name": INTERFACE,
                    "version_major": 1,
                    "version_minor": 0,
                    "type": "datastream",
                    "ownership": "device",
                    "mappings": [
                        {"endpoint": "/%{sensor}/value", "type": "double"},
                    ],
                }
            ),
        )
        start = datetime.now(UTC)
        device_ids = [random_device_id() for _ in range(devices)]
        for device_id in device_ids:
            await storage.devices.register(REALM, device_id, "hash", {INTERFACE: (1, 0)}, start)
        ingestor = Ingestor(storage, lambda: datetime.now(UTC))

        def batch(number: int) -> list[DeviceMessage]:
            received = datetime.now(UTC)
            messages = []
            for index in range(BATCH_SIZE):
                serial = number * BATCH_SIZE + index
                payload = bson.encode({"v": serial * 0.5})
                suffix = f"/{INTERFACE}/s{serial % SENSORS}/value"
                messages.append(
                    DeviceMessage(
                        REALM,
                        device_ids[serial % devices],
                        Published(suffix, payload, 1),
                        received + timedelta(microseconds=index),
                    )
                )
            return messages

        # Warm-up: every device's state, the interface cache and the prepared statements.
        warmup = -(-devices // BATCH_SIZE)
        for number in range(warmup):
            await ingestor.process(batch(number))
        prepared = [batch(number) for number in range(warmup, warmup + batches)]
        latencies = []
        began = time.perf_counter()
        for messages in prepared:
            before = time.perf_counter()
            outcomes = await ingestor.process(messages)
            latencies.append(time.perf_counter() - before)
            assert all(outcome.accepted for outcome in outcomes)
        elapsed = time.perf_counter() - began
    finally:
        await storage.close()

    samples = batches * BATCH_SIZE
    latencies.sort()
    print(f"{samples} samples in {batches} batches of {BATCH_SIZE} over {devices} devices")
    print(f"throughput: {samples / elapsed:,.0f} samples/s")
    print(
        f"batch latency: median {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--devices", type=int, default=64)
    parser.add_argument("--dir", type=Path, help="folder for the database (default: a temp dir)")
    args = parser.parse_args()
    if args.dir is not None:
        asyncio.run(run(args.batches, args.devices, args.dir))
        return
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(args.batches, args.devices, Path(folder)))


if __name__ == "__main__":
    main()
