"""Memory: RSS sampling, OOM back-off (simulated OOM), largest-batch search, meta-device weights estimate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _bench_fakes import OomAbove, loader_for

from advisor.bench import BenchConfig, benchmark_model
from advisor.bench.memory import (
    RssSampler,
    find_max_batch,
    is_oom_error,
    read_rss_bytes,
    run_with_oom_backoff,
    weights_bytes,
)
from advisor.bench.runner import estimate_memory_mb


def _oom_above(limit: int):
    calls = []

    def run(bs: int) -> str:
        calls.append(bs)
        if bs > limit:
            raise torch.OutOfMemoryError(f"simulated OOM at batch {bs}")
        return f"ran {bs}"

    return run, calls


def test_backoff_halves_until_the_batch_fits():
    run, calls = _oom_above(5)
    res = run_with_oom_backoff(run, 32)
    assert res.batch_size == 4 and res.result == "ran 4"
    assert res.oom_batches == [32, 16, 8]
    assert calls == [32, 16, 8, 4]


def test_backoff_reports_none_when_nothing_fits_and_reraises_other_errors():
    run, _ = _oom_above(0)
    res = run_with_oom_backoff(run, 4)
    assert res.batch_size is None and res.oom_batches == [4, 2, 1]

    def broken(bs):
        raise ValueError("not a memory problem")

    with pytest.raises(ValueError):
        run_with_oom_backoff(broken, 4)
    assert is_oom_error(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_oom_error(RuntimeError("shape mismatch"))


def test_find_max_batch_doubles_then_bisects():
    run, calls = _oom_above(37)
    best, oom = find_max_batch(run, start=1, limit=1024)
    assert best == 37
    assert 64 in oom and all(b > 37 for b in oom)
    best, _ = find_max_batch(_oom_above(10_000)[0], start=4, limit=100)
    assert best == 100  # the limit caps the search


def test_rss_sampler_sees_an_allocation():
    with RssSampler(interval_s=0.001) as s:
        a = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB, touched
        a += 1
    assert s.delta_bytes >= 48 * 1024 * 1024
    assert s.peak_bytes >= s.baseline_bytes
    assert read_rss_bytes() > 0
    assert "VmRSS" in s.method


def test_benchmark_backs_off_on_simulated_oom(tmp_path):
    module = OomAbove(limit=4)
    cfg = BenchConfig(
        device="cpu",
        batch_sizes=(2, 8, 16),
        min_time=0.0,
        min_repeats=3,
        max_time=0.5,
        warmup=1,
        count_flops=False,
        threads=1,
    )
    res = benchmark_model("fake:oom", cfg, loader=loader_for(module), store_path=tmp_path / "b.sqlite")
    by_req = {r.requested_batch_size: r for r in res.records}
    assert by_req[2].status == "ok" and by_req[2].batch_size == 2
    assert by_req[8].status == "ok" and by_req[8].batch_size == 4 and by_req[8].oom_batches == [8]
    assert any("ran out of memory" in w for w in by_req[8].warnings)
    assert by_req[16].status == "skipped"  # a smaller batch already ran out of memory
    assert by_req[8].throughput_items_per_s == pytest.approx(4 / (by_req[8].latency["p50_ms"] / 1000))
    assert by_req[2].memory["cpu_rss_delta_mb"] is not None


def test_find_max_batch_in_benchmark(tmp_path):
    cfg = BenchConfig(
        device="cpu",
        batch_sizes=(1,),
        min_time=0.0,
        min_repeats=3,
        max_time=0.3,
        warmup=0,
        count_flops=False,
        find_max_batch=True,
        max_batch_limit=64,
    )
    res = benchmark_model("fake:oom", cfg, loader=loader_for(OomAbove(limit=21)), store=False)
    assert res.max_batch["largest_batch_that_fits"] == 21


def test_weights_estimate_on_meta_device():
    d = estimate_memory_mb("timm:resnet18", "fp32")
    assert d["n_params"] == 11_689_512  # timm/torchvision resnet18
    assert d["weights_mb"] == pytest.approx(11_689_512 * 4 / 2**20, rel=0.01)
    half = estimate_memory_mb("timm:resnet18", "bf16")
    assert half["weights_mb"] == pytest.approx(d["weights_mb"] / 2, rel=0.01)
    assert weights_bytes(torch.nn.Linear(10, 10))["n_params"] == 110
