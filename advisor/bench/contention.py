"""CPU used by *other* processes while a figure was timed: the busy-machine signal our own threads do not trip.

The 1-minute load average counts this process too: on a 2-core machine, a minute of our own two-thread feature
extraction leaves it near 2, and the latency measured right after was flagged "busy" and re-measured for nothing.
`OthersCpu` reads the busy time of the CPUs this process may run on (Linux ``/proc/stat``: user, nice, system, irq,
softirq and steal, the last being a shared VM's neighbours) over the timing window and subtracts this process's
own CPU time (`time.process_time`, all threads). Elsewhere, or over a window too short for the counters' 10 ms
resolution, the value is None and the load-average rule decides (`advisor.bench.reliability`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

MIN_WINDOW_S = 0.5  # the counters tick every 10 ms per CPU: shorter windows cannot resolve half a CPU
BUSY_MARGIN_CPUS = (
    0.5  # others may use this much CPU beyond the cores our threads leave free before it is "busy"
)


def _allowed_cpus() -> tuple[int, ...]:
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return tuple(range(os.cpu_count() or 1))


def busy_seconds(cpus: tuple[int, ...], stat_text: str | None = None) -> float | None:
    """CPU-seconds the given CPUs have spent busy since boot (``/proc/stat``), or None where it cannot be read."""
    try:
        if stat_text is None:
            with open("/proc/stat", encoding="ascii") as f:
                stat_text = f.read()
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    want = {f"cpu{i}" for i in cpus}
    total, seen = 0, 0
    for line in stat_text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in want:
            continue
        v = [int(x) for x in parts[1:9]] + [0] * (8 - len(parts[1:9]))
        user, nice, system, _idle, _iowait, irq, softirq, steal = v
        total += user + nice + system + irq + softirq + steal
        seen += 1
    return total / tick if seen == len(want) and tick > 0 else None


@dataclass
class OthersCpu:
    """Mean CPUs used by other processes over a window (`value`, None when unknown) on `capacity` CPUs."""

    capacity: int
    value: float | None = None
    seconds: float = 0.0


def is_busy(others: float, capacity: int, threads: int | None) -> bool:
    """True when other processes used more than the CPUs our `threads` left free, plus `BUSY_MARGIN_CPUS`."""
    free = max(capacity - (threads or capacity), 0)
    return others > free + BUSY_MARGIN_CPUS


@contextmanager
def others_cpu() -> Iterator[OthersCpu]:
    """Measure, over the ``with`` block, the CPU that processes other than this one used on our CPUs."""
    cpus = _allowed_cpus()
    out = OthersCpu(capacity=len(cpus))
    b0, s0, t0 = busy_seconds(cpus), time.process_time(), time.perf_counter()
    try:
        yield out
    finally:
        b1, s1, wall = busy_seconds(cpus), time.process_time(), time.perf_counter() - t0
        out.seconds = wall
        if b0 is not None and b1 is not None and wall >= MIN_WINDOW_S:
            out.value = round(max(0.0, (b1 - b0) - (s1 - s0)) / wall, 2)
