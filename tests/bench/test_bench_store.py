"""The SQLite results store: append, lookup by key, reuse, figures for the recommend step, fingerprint."""

from __future__ import annotations

import pytest
from _bench_fakes import SleepModule, loader_for

from advisor.bench import BenchConfig, BenchResult, ResultsStore, benchmark_model, hardware_fingerprint
from advisor.errors import ResultsError

CFG = BenchConfig(
    device="cpu",
    batch_sizes=(1, 2),
    min_time=0.02,
    min_repeats=3,
    max_time=0.5,
    warmup=1,
    count_flops=False,
    threads=1,
)


def test_sleep_module_benchmark_is_stored_and_reused(tmp_path, monkeypatch):
    db = tmp_path / "bench.sqlite"
    module = SleepModule(0.005)
    # Only reliable figures are reused; whether this one is depends on the shared machine's load and spread
    # (test_bench_reliability.py covers that), so here every stored figure counts as reliable.
    monkeypatch.setattr("advisor.bench.reliability.reusable", lambda record: True)
    res = benchmark_model("fake:sleep", CFG, loader=loader_for(module), store_path=db)
    assert set(res.reliability) >= {"reliable", "reasons", "spread_rel", "loadavg_1m", "threads"}
    assert not res.from_cache and not res.pretrained and "random initialisation" in res.weights_note
    for rec in res.records:
        assert rec.status == "ok" and rec.threads == 1 and rec.dtype == "float32" and rec.tf32 is False
        assert rec.latency["p50_ms"] >= 5.0  # the sleep is a floor
        assert rec.latency["pool_size"] >= 2
    assert len(set(module.seen)) >= 2  # different input tensors were cycled

    store = ResultsStore(db)
    assert store.count() == 1
    again = benchmark_model(
        "fake:sleep", CFG, loader=loader_for(SleepModule(0.005)), store_path=db, reuse=True
    )
    assert again.from_cache and again.key == res.key
    assert again.records[0].latency == res.records[0].latency
    assert store.count() == 1  # reuse does not measure nor store

    other = BenchConfig(**{**CFG.to_dict(), "batch_sizes": (3,)})
    third = benchmark_model(
        "fake:sleep", other, loader=loader_for(SleepModule(0.001)), store_path=db, reuse=True
    )
    assert not third.from_cache and third.key != res.key
    assert store.count() == 2

    fig = store.latest_figure(
        "fake:sleep", batch_size=2, precision="fp32", device="cpu", hardware_key=res.hardware["key"]
    )
    assert fig["p50_ms"] == pytest.approx(res.records[1].latency["p50_ms"])
    assert fig["throughput_items_per_s"] == pytest.approx(res.records[1].throughput_items_per_s)
    assert [r["model_id"] for r in store.find("fake:sleep")] == ["fake:sleep", "fake:sleep"]
    assert store.get("nope") is None


def test_result_round_trips_through_dict(tmp_path):
    res = benchmark_model("fake:sleep", CFG, loader=loader_for(SleepModule(0.001)), store=False)
    back = BenchResult.from_dict(res.to_dict())
    assert back.to_dict() == res.to_dict()
    assert BenchConfig.from_dict(res.config) == CFG


def test_default_store_lives_in_the_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path))
    benchmark_model("fake:sleep", CFG, loader=loader_for(SleepModule(0.001)))
    assert (tmp_path / "bench.sqlite").is_file()
    assert ResultsStore().count() == 1


def test_fingerprint_is_stable_and_descriptive():
    a, b = hardware_fingerprint(), hardware_fingerprint()
    assert a["key"] == b["key"] and len(a["key"]) == 16
    assert a["cpu_logical_cpus"] >= 1 and a["versions"]["torch"]
    assert {"cpu_model", "gpus", "driver_version", "cuda_version", "memory_total_gb"} <= set(a)


def test_corrupt_store_is_a_domain_error(tmp_path):
    bad = tmp_path / "bench.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ResultsError):
        ResultsStore(bad)
