"""Timing discipline: sync before each clock read, input pool, repeat/stop rules, percentiles, spread warnings."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.bench.timing import median_ci, summarize, time_callable


class FakeClock:
    """A clock that the timed function advances by known durations (deterministic timing tests)."""

    def __init__(self, durations):
        self.t = 0.0
        self.durations = list(durations)
        self.i = 0
        self.events: list[str] = []

    def __call__(self) -> float:
        self.events.append("clock")
        return self.t

    def fn(self, *args) -> None:
        self.events.append("call")
        self.t += self.durations[self.i % len(self.durations)]
        self.i += 1

    def sync(self) -> None:
        self.events.append("sync")


def test_sync_precedes_every_clock_read_and_warmup_is_untimed():
    clk = FakeClock([0.001])
    stats = time_callable(
        clk.fn, [(1,)], sync=clk.sync, warmup=4, min_repeats=5, min_time=0.0, max_time=1.0, clock=clk
    )
    first_clock = clk.events.index("clock")
    assert clk.events[:first_clock].count("call") == 4  # warm-up calls happen before any clock read
    for i, e in enumerate(clk.events):
        if e == "clock":
            assert clk.events[i - 1] == "sync", "the device must be synchronised right before each clock read"
    assert stats.warmup == 4
    assert stats.n >= 5


def test_constant_latency_gives_exact_percentiles_and_stops_on_tight_ci():
    clk = FakeClock([0.010])
    stats = time_callable(
        clk.fn,
        [(1,), (2,)],
        min_repeats=10,
        min_time=0.2,
        max_time=10.0,
        ci_rel_tol=0.01,
        warmup=0,
        clock=clk,
    )
    assert stats.p50_ms == pytest.approx(10.0)
    assert stats.p99_ms == pytest.approx(10.0)
    assert stats.iqr_ms == pytest.approx(0.0)
    assert stats.stop_reason == "ci"
    assert stats.n >= 20  # min_time 0.2 s of 10 ms calls
    assert stats.throughput(8) == pytest.approx(800.0)
    assert stats.warnings == ()


def test_min_repeats_and_min_time_are_both_required():
    clk = FakeClock([0.5])
    stats = time_callable(clk.fn, [(1,)], min_repeats=7, min_time=0.1, max_time=100.0, warmup=0, clock=clk)
    assert stats.n == 7  # min_time was reached after 1 call, but 7 repeats are required
    clk = FakeClock([0.001])
    stats = time_callable(clk.fn, [(1,)], min_repeats=3, min_time=0.05, max_time=100.0, warmup=0, clock=clk)
    assert stats.n >= 50


def test_noisy_latency_stops_at_max_time_with_warnings():
    rng = np.random.default_rng(0)
    clk = FakeClock(list(rng.uniform(0.001, 0.004, size=997)))
    stats = time_callable(
        clk.fn, [(1,)], min_repeats=10, min_time=0.05, max_time=0.2, ci_rel_tol=1e-9, warmup=0, clock=clk
    )
    assert stats.stop_reason == "max_time"
    assert stats.total_s == pytest.approx(0.2, abs=0.005)
    assert any("large spread" in w for w in stats.warnings)
    assert any("max_time" in w for w in stats.warnings)
    assert stats.p50_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms


def test_inputs_are_cycled_through_the_pool():
    seen = []
    pool = [(i,) for i in range(4)]
    time_callable(lambda i: seen.append(i), pool, warmup=0, min_repeats=12, min_time=0.0, max_repeats=12)
    assert seen == [0, 1, 2, 3] * 3


def test_sleep_module_latency_is_measured(monkeypatch):
    """A real clock: a 20 ms sleep is never measured shorter than 20 ms, and not wildly longer."""
    import time

    stats = time_callable(lambda: time.sleep(0.02), [()], warmup=1, min_repeats=5, min_time=0.1, max_time=2.0)
    assert stats.min_ms >= 20.0
    assert stats.p50_ms < 20.0 * 5  # generous: the test machine may be loaded


def test_summarize_and_median_ci():
    stats = summarize([0.001, 0.002, 0.003, 0.004, 0.100])
    assert stats.p50_ms == pytest.approx(3.0)
    assert stats.iqr_ms == pytest.approx(2.0)
    lo, hi = median_ci(np.arange(100.0))
    assert lo < 49.5 < hi and hi - lo < 25
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        time_callable(lambda: None, [])
