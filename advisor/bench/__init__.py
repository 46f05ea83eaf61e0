"""Benchmark harness: latency/throughput (timing discipline coded once), memory, GMACs, hardware fingerprint,
published-figure comparison and the SQLite results store."""

from __future__ import annotations

from advisor.bench.flops import GmacsResult, count_gmacs
from advisor.bench.hardware import hardware_fingerprint
from advisor.bench.memory import MemoryMonitor, RssSampler, find_max_batch, run_with_oom_backoff
from advisor.bench.runner import BatchRecord, BenchConfig, BenchResult, benchmark_model, estimate_memory_mb
from advisor.bench.store import ResultsStore
from advisor.bench.timing import TimingStats, time_callable

__all__ = [
    "BatchRecord",
    "BenchConfig",
    "BenchResult",
    "GmacsResult",
    "MemoryMonitor",
    "ResultsStore",
    "RssSampler",
    "TimingStats",
    "benchmark_model",
    "count_gmacs",
    "estimate_memory_mb",
    "find_max_batch",
    "hardware_fingerprint",
    "run_with_oom_backoff",
    "time_callable",
]
