"""Latency measurement, coded once: warm-up, synchronised clock reads, a pool of inputs, adaptive repeat count.

Every latency figure in advisor comes from `time_callable`. The rules it enforces:
- warm-up calls first (allocator, kernel selection, lazy init), never timed;
- the device is synchronised before every clock read (``sync``), so asynchronous GPU work is inside the interval;
- a *pool* of different inputs is cycled, so no cache keeps a single reused tensor artificially hot;
- repeats continue until BOTH ``min_repeats`` and ``min_time`` are reached, then stop as soon as the 95 %
  confidence interval of the median is tight (half-width <= ``ci_rel_tol`` x median), or at ``max_time``;
- the statistics are order statistics (median, p90, p99, IQR) that one slow outlier cannot drag.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# IQR/median above this is reported as a large spread (noisy machine, thermal throttling, other load).
SPREAD_WARN_REL = 0.10


@dataclass(frozen=True)
class TimingStats:
    """Latency statistics of one timed callable, in milliseconds per call.

    Attributes:
        n: number of timed calls.
        p50_ms, p90_ms, p99_ms: percentiles of the per-call latency (p50 = median).
        iqr_ms: inter-quartile range (p75 - p25).
        mean_ms, std_ms, min_ms, max_ms: the usual moments and extremes.
        ci95_ms: distribution-free 95 % confidence interval of the median (order statistics).
        ci_rel: half-width of ``ci95_ms`` divided by the median.
        total_s: wall time spent in the timed calls.
        warmup: number of untimed warm-up calls.
        pool_size: number of distinct inputs cycled through.
        stop_reason: ``"ci"`` (interval tight), ``"max_time"``, ``"max_repeats"``.
        warnings: human-readable reasons to distrust the figure (large spread, interval not reached).
    """

    n: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    iqr_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    ci95_ms: tuple[float, float]
    ci_rel: float
    total_s: float
    warmup: int
    pool_size: int
    stop_reason: str
    warnings: tuple[str, ...] = ()

    def throughput(self, items_per_call: int) -> float:
        """Items per second at the median latency (``items_per_call`` = batch size)."""
        return items_per_call / (self.p50_ms / 1000.0) if self.p50_ms > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci95_ms"] = list(self.ci95_ms)
        d["warnings"] = list(self.warnings)
        return d


def median_ci(sorted_samples: Sequence[float] | np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from sorted samples (binomial order statistics).

    With n samples the ranks ``n/2 -+ z*sqrt(n)/2`` bound the median with ~95 % coverage for z = 1.96, whatever
    the latency distribution (which is skewed, so a normal-theory interval on the mean would mislead).
    """
    x = np.asarray(sorted_samples, dtype=float)
    n = len(x)
    if n == 0:
        return (math.nan, math.nan)
    half = z * math.sqrt(n) / 2.0
    lo = max(0, int(math.floor(n / 2.0 - half)))
    hi = min(n - 1, int(math.ceil(n / 2.0 + half)))
    return float(x[lo]), float(x[hi])


def summarize(
    samples_s: Sequence[float],
    *,
    warmup: int = 0,
    pool_size: int = 1,
    stop_reason: str = "given",
    total_s: float | None = None,
) -> TimingStats:
    """Turn per-call durations (seconds) into `TimingStats` (milliseconds), with spread warnings.

    Raises:
        ValueError: when ``samples_s`` is empty.
    """
    if len(samples_s) == 0:
        raise ValueError("no timing samples")
    ms = np.sort(np.asarray(samples_s, dtype=float) * 1000.0)
    p25, p50, p75, p90, p99 = np.percentile(ms, [25, 50, 75, 90, 99])
    lo, hi = median_ci(ms)
    ci_rel = (hi - lo) / 2.0 / p50 if p50 > 0 else math.inf
    iqr = float(p75 - p25)
    warns = []
    if p50 > 0 and iqr / p50 > SPREAD_WARN_REL:
        warns.append(
            f"large spread: IQR is {100 * iqr / p50:.0f}% of the median (> {100 * SPREAD_WARN_REL:.0f}%); "
            "the machine may be busy or throttling"
        )
    if stop_reason != "ci" and stop_reason != "given":
        warns.append(f"stopped at {stop_reason} before the median's 95% CI was tight (+-{100 * ci_rel:.1f}%)")
    if len(ms) < 10:
        warns.append(f"only {len(ms)} timed calls")
    return TimingStats(
        n=len(ms),
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        iqr_ms=iqr,
        mean_ms=float(ms.mean()),
        std_ms=float(ms.std(ddof=1)) if len(ms) > 1 else 0.0,
        min_ms=float(ms[0]),
        max_ms=float(ms[-1]),
        ci95_ms=(float(lo), float(hi)),
        ci_rel=float(ci_rel),
        total_s=float(total_s if total_s is not None else ms.sum() / 1000.0),
        warmup=warmup,
        pool_size=pool_size,
        stop_reason=stop_reason,
        warnings=tuple(warns),
    )


def _noop() -> None:
    return None


def time_callable(
    fn: Callable[..., Any],
    inputs: Sequence[tuple[Any, ...]],
    *,
    sync: Callable[[], None] | None = None,
    warmup: int = 3,
    min_repeats: int = 10,
    min_time: float = 1.0,
    max_time: float = 30.0,
    max_repeats: int = 100_000,
    ci_rel_tol: float = 0.01,
    clock: Callable[[], float] = time.perf_counter,
) -> TimingStats:
    """Time ``fn(*inputs[i % len(inputs)])`` with the discipline described in this module's docstring.

    Args:
        fn: the callable to time (e.g. a module's forward); its result is discarded.
        inputs: a pool of argument tuples, cycled so consecutive calls see different data.
        sync: waits for the device to finish (``torch.cuda.synchronize``); ``None`` for synchronous devices.
        warmup: untimed calls before measuring.
        min_repeats: at least this many timed calls ...
        min_time: ... and at least this many seconds of timed calls.
        max_time: stop after this many seconds even if the interval is still wide (a warning says so).
        max_repeats: hard cap on timed calls.
        ci_rel_tol: stop once the 95 % CI half-width of the median is below this fraction of the median.
        clock: the clock (monotonic, high resolution); injectable for tests.

    Returns:
        `TimingStats` in milliseconds per call.

    Raises:
        ValueError: empty input pool or inconsistent limits.
    """
    if not inputs:
        raise ValueError("time_callable needs at least one input tuple")
    if min_repeats < 1 or max_repeats < min_repeats:
        raise ValueError("need 1 <= min_repeats <= max_repeats")
    sync = sync or _noop
    pool = len(inputs)
    for i in range(warmup):
        fn(*inputs[i % pool])
    sync()

    samples: list[float] = []
    spent = 0.0
    stop_reason = "max_repeats"
    next_check = min_repeats
    i = 0
    while len(samples) < max_repeats:
        args = inputs[i % pool]
        i += 1
        sync()
        t0 = clock()
        fn(*args)
        sync()
        dt = clock() - t0
        samples.append(dt)
        spent += dt
        n = len(samples)
        if spent >= max_time and n >= min(min_repeats, 3):
            stop_reason = "max_time"
            break
        if n >= next_check and spent >= min_time:
            # Sorting is O(n log n): check at ~geometric intervals so the bookkeeping never dominates.
            next_check = n + max(1, n // 10)
            srt = np.sort(np.asarray(samples))
            lo, hi = median_ci(srt)
            med = float(np.median(srt))
            if med > 0 and (hi - lo) / 2.0 / med <= ci_rel_tol:
                stop_reason = "ci"
                break
    return summarize(samples, warmup=warmup, pool_size=pool, stop_reason=stop_reason, total_s=spent)
