"""The busy-machine signal counts other processes' CPU, not this process's own threads."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from advisor.bench.contention import MIN_WINDOW_S, busy_seconds, is_busy, others_cpu
from advisor.bench.reliability import assess

STAT = """cpu  900 10 300 5000 40 5 6 7 0 0
cpu0 100 1 50 2500 20 2 3 4 0 0
cpu1 200 2 60 2500 20 3 3 3 0 0
intr 1 2 3
"""
LINUX = Path("/proc/stat").exists()


def test_busy_seconds_sums_busy_fields_of_the_given_cpus_only():
    import os

    tick = os.sysconf("SC_CLK_TCK")
    # user + nice + system + irq + softirq + steal; idle and iowait are not busy
    assert busy_seconds((0,), STAT) == pytest.approx((100 + 1 + 50 + 2 + 3 + 4) / tick)
    assert busy_seconds((0, 1), STAT) == pytest.approx((160 + 271) / tick)
    assert busy_seconds((0, 2), STAT) is None  # a CPU without its line: unknown, not zero


def test_is_busy_leaves_room_for_our_threads():
    assert not is_busy(0.4, 2, 2) and is_busy(0.6, 2, 2)
    assert not is_busy(1.4, 2, 1) and is_busy(1.6, 2, 1)
    assert not is_busy(0.4, 64, None) and not is_busy(50.0, 64, 8) and is_busy(57.0, 64, 8)


@pytest.mark.skipif(not LINUX, reason="needs /proc/stat")
def test_own_cpu_use_is_not_counted_but_another_process_is():
    # the machine may be loaded by others (a shared CI box): compare with a window in which we only sleep
    with others_cpu() as idle:
        time.sleep(MIN_WINDOW_S + 0.3)
    with others_cpu() as mine:
        end = time.perf_counter() + MIN_WINDOW_S + 0.3
        while time.perf_counter() < end:  # this process spins a whole CPU
            pass
    assert idle.value is not None and mine.value is not None
    assert mine.value <= idle.value + 0.4  # counting our own spin would add about 1
    spin = "import time\nend = time.perf_counter() + 1.2\nwhile time.perf_counter() < end: pass\n"
    with others_cpu() as theirs:
        child = subprocess.Popen([sys.executable, "-c", spin])
        child.wait(timeout=30)
    assert theirs.value is not None and theirs.value > 0.5


def test_short_window_is_unknown():
    with others_cpu() as w:
        pass
    assert w.value is None and w.capacity >= 1


def _record(env: dict) -> dict:
    return {
        "hardware": {"cpu_usable_cpus": 2},
        "environment": env,
        "records": [{"status": "ok", "threads": 2, "latency": {"p50_ms": 10.0, "iqr_ms": 0.1}}],
    }


def test_a_high_load_average_from_our_own_work_is_not_busy():
    # The bug: a minute of our own 2-thread feature extraction left the load average above 2, so every latency
    # figure that followed was flagged "machine busy" and re-measured. Other processes' CPU now decides.
    quiet = assess(
        _record({"loadavg_1m_before": 2.6, "loadavg_1m_after": 2.4, "cpu_others": 0.1, "cpu_capacity": 2})
    )
    assert quiet["reliable"] and not quiet["busy"] and quiet["cpu_others"] == 0.1
    loud = assess(_record({"loadavg_1m_before": 0.3, "cpu_others": 1.2, "cpu_capacity": 2}))
    assert not loud["reliable"] and loud["busy"]
    assert loud["reasons"] == ["machine busy: other processes used 1.2 of 2 CPUs while timing"]
    # records without the measurement (older ones, other systems) keep the load-average rule
    old = assess(_record({"loadavg_1m_before": 2.6, "loadavg_1m_after": 2.4}))
    assert old["busy"] and old["reasons"] == ["machine busy: 1-min load average 2.6 > 2 usable CPUs"]


def test_benchmark_model_records_the_cpu_of_others(tmp_path):
    from advisor.bench import BenchConfig, benchmark_model
    from tests.bench._bench_fakes import SleepModule, loader_for

    cfg = BenchConfig(device="cpu", batch_sizes=(1,), min_time=0.0, max_time=0.05, min_repeats=3, warmup=0)
    res = benchmark_model("fake:a", cfg, store=False, loader=loader_for(SleepModule(0.0005)))
    env = res.to_dict()["environment"]
    assert "cpu_others" in env and env["cpu_capacity"] >= 1
    assert set(res.reliability) >= {"cpu_others", "busy"}
