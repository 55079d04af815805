"""What the benchmark reads off the machine: process CPU and memory, machine load, percentiles."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import psutil


def free_port() -> int:
    """A port the kernel says is free (never 1883, which the shared Mosquitto owns)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != 1883:
            return port


class ProcessProbe:
    """CPU seconds and memory of a server process, read from /proc.

    Peak RSS is the kernel's high-water mark (VmHWM), not a sample: it cannot miss a spike.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.process = psutil.Process(pid)

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def _status_kib(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def peak_rss_mib(self) -> float:
        return self._status_kib("VmHWM") / 1024

    def rss_mib(self) -> float:
        return self._status_kib("VmRSS") / 1024

    def pids(self) -> set[int]:
        return {self.pid}


class ProbeGroup:
    """Several processes measured as one system under test (a distributed platform, with its
    broker and database), each also on its own under a name."""

    def __init__(self, members: dict[str, list[int]]) -> None:
        self.members = {
            name: [ProcessProbe(pid) for pid in pids if psutil.pid_exists(pid)]
            for name, pids in members.items()
        }

    def cpu_by_name(self) -> dict[str, float]:
        return {
            name: sum(_cpu_or_zero(probe) for probe in probes)
            for name, probes in self.members.items()
        }

    def cpu_seconds(self) -> float:
        return sum(self.cpu_by_name().values())

    def rss_mib(self) -> float:
        return sum(p.rss_mib() for probes in self.members.values() for p in probes)

    def peak_rss_mib(self) -> float:
        return sum(p.peak_rss_mib() for probes in self.members.values() for p in probes)

    def pids(self) -> set[int]:
        return {p.pid for probes in self.members.values() for p in probes}


def _cpu_or_zero(probe: ProcessProbe) -> float:
    """A database backend may end during the run; what it used is then lost."""
    try:
        return probe.cpu_seconds()
    except psutil.NoSuchProcess:
        return 0.0


class MachineCpu:
    """Busy share of all cores between two reads of /proc/stat (1.0 = every core busy).

    Loopback TCP is processed in softirq context, which no process is charged for, so the
    softirq share is kept apart: it is part of the networking cost on both targets.
    """

    def __init__(self) -> None:
        self._start = self._read()

    @staticmethod
    def _read() -> list[int]:
        line = Path("/proc/stat").read_text().split("\n", 1)[0]
        return [int(x) for x in line.split()[1:9]]  # user nice system idle iowait irq softirq steal

    def _delta(self) -> tuple[list[int], int]:
        delta = [b - a for a, b in zip(self._start, self._read(), strict=True)]
        return delta, max(1, sum(delta))

    def busy_share(self) -> float:
        delta, total = self._delta()
        return (total - delta[3] - delta[4]) / total

    def softirq_share(self) -> float:
        delta, total = self._delta()
        return (delta[5] + delta[6]) / total


class CpuCensus:
    """CPU seconds every process on the machine used over a window.

    The box is shared with other people's test runs; this says how much of a run's window
    went to processes that are not part of the benchmark.
    """

    def __init__(self) -> None:
        self._start = self._read()

    @staticmethod
    def _read() -> dict[int, tuple[str, float]]:
        seen = {}
        for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
            times = process.info["cpu_times"]
            if times is None:
                continue
            command = process.info["cmdline"] or [process.info["name"] or "?"]
            label = " ".join(command)[:80]
            seen[process.pid] = (label, float(times.user + times.system))
        return seen

    def others(self, ours: set[int], top: int = 3) -> tuple[float, list[str]]:
        """CPU seconds of processes not in `ours` (nor this one and its children), and the
        biggest of them."""
        me = psutil.Process()
        ours = ours | {me.pid} | {child.pid for child in me.children(recursive=True)}
        used = []
        for pid, (label, seconds) in self._read().items():
            if pid in ours:
                continue
            before = self._start.get(pid, (label, 0.0))[1]
            if seconds - before > 0.005:
                used.append((seconds - before, label))
        used.sort(reverse=True)
        return sum(s for s, _ in used), [f"{label} ({s:.2f} s)" for s, label in used[:top]]


def percentile(sorted_values: list[float], share: float) -> float:
    """Nearest-rank percentile of an already sorted list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    rank = min(len(sorted_values), max(1, math.ceil(share * len(sorted_values)))) - 1
    return float(sorted_values[rank])
