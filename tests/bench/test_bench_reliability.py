"""Latency reliability: busy machine / large spread flagged, never reused, re-measured in interleaved rounds."""

from __future__ import annotations

from typing import Any

from advisor.bench import BenchConfig, benchmark_model
from advisor.bench.reliability import (
    UNRELIABLE_SPREAD_REL,
    Measured,
    assess,
    measure_candidates,
    reusable,
    unstable_reason,
)
from tests.bench._bench_fakes import SleepModule, loader_for

FAST = {
    "device": "cpu",
    "batch_sizes": (1,),
    "min_time": 0.0,
    "max_time": 0.05,
    "min_repeats": 3,
    "warmup": 0,
}


def test_busy_figure_is_flagged_and_not_reused(tmp_path):
    db = tmp_path / "bench.sqlite"
    cfg = BenchConfig(count_flops=False, **FAST)
    load = loader_for(SleepModule(0.0005))
    busy = benchmark_model("fake:a", cfg, store=True, loader=load, store_path=db, load_fn=lambda: 99.0)
    assert busy.reliability["reliable"] is False
    assert any("machine busy" in r for r in busy.reliability["reasons"])
    assert busy.reliability["loadavg_1m"] == 99.0
    # The same settings on an idle machine: the stored busy figure is not served again.
    again = benchmark_model(
        "fake:a", cfg, store=True, reuse=True, loader=load, store_path=db, load_fn=lambda: 0.0
    )
    assert again.from_cache is False
    assert again.reliability["loadavg_1m"] == 0.0
    # ... but a reliable one is (when its spread is small, as a sleeping module's is).
    if again.reliability["reliable"]:
        third = benchmark_model(
            "fake:a", cfg, store=True, reuse=True, loader=load, store_path=db, load_fn=lambda: 0.0
        )
        assert third.from_cache is True


def _fake_record(model_id: str, p50: float, iqr: float, threads: int | None, load: float) -> dict[str, Any]:
    return {
        "model_id": model_id,
        "key": f"k-{model_id}-{threads}",
        "settings_key": f"s-{threads}",
        "hardware": {"key": "hw", "cpu_usable_cpus": 2},
        "device": "cpu",
        "environment": {"loadavg_1m_before": load, "loadavg_1m_after": load},
        "weights_memory_mb": {"fp32": 1.0},
        "gmacs": None,
        "records": [
            {
                "status": "ok",
                "precision": "fp32",
                "requested_batch_size": 1,
                "batch_size": 1,
                "threads": threads or 2,
                "latency": {"p50_ms": p50, "p90_ms": p50 + iqr, "iqr_ms": iqr},
                "memory": {"cpu_rss_delta_mb": 1.0},
            }
        ],
    }


class FakeBench:
    """Stands in for benchmark_model: spread per (model, call number), load per call; records the calls."""

    def __init__(
        self, spreads: dict[str, list[float]], loads: list[float], p50s: dict[str, list[float]] | None = None
    ) -> None:
        self.spreads, self.loads, self.p50s = spreads, loads, p50s or {}
        self.calls: list[tuple[str, int | None, bool]] = []
        self.configs: list[BenchConfig] = []

    def __call__(self, model_id, config, *, store, reuse, store_path, load_fn) -> dict[str, Any]:
        n = sum(1 for c in self.calls if c[0] == model_id)
        self.calls.append((model_id, config.threads, reuse))
        self.configs.append(config)
        load = self.loads[min(len(self.calls) - 1, len(self.loads) - 1)]
        p50 = self.p50s[model_id][n] if model_id in self.p50s else 10.0
        return _fake_record(model_id, p50, p50 * self.spreads[model_id][n], config.threads, load)


def test_high_spread_triggers_interleaved_rounds_with_recommended_threads(tmp_path):
    # First pass: b has a 120 % spread on a busy machine; rounds then run round-robin over a and b with 1 thread.
    fake = FakeBench({"a": [0.05, 0.3, 0.02, 0.2], "b": [1.2, 0.5, 0.04, 0.6]}, loads=[1.0, 5.0, 0.5])
    got = measure_candidates(
        ["a", "b"], BenchConfig(**FAST), rounds=3, bench_fn=fake, store_path=tmp_path / "b.sqlite"
    )
    assert [c[0] for c in fake.calls] == ["a", "b", "a", "b", "a", "b", "a", "b"]
    assert [c[1] for c in fake.calls[2:]] == [1] * 6  # bench's advice on a busy machine: --threads 1
    assert fake.calls[0][2] is True and all(c[2] is False for c in fake.calls[2:])
    assert all(not c.count_flops for c in fake.configs[2:])  # GMACs do not depend on load: counted once
    # each keeps its most reliable round (smallest spread), all from the same settings
    assert got["a"].reliability["spread_rel"] == 0.02 and got["a"].rounds == 3
    assert got["b"].reliability["spread_rel"] == 0.04 and got["b"].reliability["reliable"] is True
    assert got["b"].threads_requested == 1


def test_rounds_keep_the_fastest_reliable_median_and_flag_a_figure_that_changed_speed(tmp_path):
    # b's first pass is noisy; in the rounds a runs at 7 ms and then 14 ms (a slow spell of the machine: each
    # round steady on its own), b stays near 20 ms. a keeps its fastest reliable round and is flagged unstable;
    # the spread of an unreliable round (b's 0.5) never wins over a reliable one, whatever its median.
    fake = FakeBench(
        {"a": [0.02, 0.02, 0.02, 0.02], "b": [1.2, 0.5, 0.02, 0.02]},
        loads=[0.1],
        p50s={"a": [7.0, 7.1, 14.2, 14.0], "b": [20.0, 5.0, 21.0, 20.5]},
    )
    db = tmp_path / "b.sqlite"
    got = measure_candidates(["a", "b"], BenchConfig(**FAST), rounds=3, bench_fn=fake, store_path=db)
    a, b = got["a"], got["b"]
    assert a.record["records"][0]["latency"]["p50_ms"] == 7.1
    assert a.reliability["reliable"] is False and a.reliability["unstable"] is True
    assert any(
        r.startswith("unstable between rounds: p50 7-14.2 ms (x2.0)") for r in a.reliability["reasons"]
    )
    assert b.record["records"][0]["latency"]["p50_ms"] == 20.5
    assert b.reliability["reliable"] is True and b.reliability["unstable"] is False
    # the stored unstable figure keeps its flag, so it is never served again as a reliable one
    assert assess(a.record)["reliable"] is False and reusable(b.record) and not reusable(a.record)


def test_unstable_reason_edges():
    def m(p50: float, reliable: bool = True) -> Measured:
        rec = _fake_record("a", p50, 0.0, None, 0.0)
        return Measured(rec, assess(rec) | {"reliable": reliable}, False, 0, None)

    assert unstable_reason([m(10.0)]) is None  # one try: nothing to compare
    assert unstable_reason([m(10.0), m(15.0)]) is None  # exactly the factor: still one speed
    assert unstable_reason([m(10.0), m(15.1)]) is not None
    assert unstable_reason([m(10.0), m(40.0, reliable=False)]) is None  # unreliable tries are not compared


def test_no_rounds_when_all_figures_reliable():
    fake = FakeBench({"a": [0.05], "b": [0.05]}, loads=[0.1])
    got = measure_candidates(["a", "b"], BenchConfig(**FAST), bench_fn=fake)
    assert len(fake.calls) == 2 and all(x.rounds == 0 and x.reliability["reliable"] for x in got.values())


def test_rebench_forces_measurement():
    fake = FakeBench({"a": [0.05]}, loads=[0.1])
    measure_candidates(["a"], BenchConfig(**FAST), rebench=True, bench_fn=fake)
    assert fake.calls == [("a", None, False)]


def test_assess_edges():
    r = _fake_record("a", 10.0, 10.0 * (UNRELIABLE_SPREAD_REL + 0.01), None, 0.0)
    assert assess(r)["reliable"] is False and "large spread" in assess(r)["reasons"][0]
    r["environment"] = {}
    r["records"][0]["latency"]["iqr_ms"] = 0.0
    assert assess(r) | {} == assess(r) and assess(r)["reliable"] is True and assess(r)["loadavg_1m"] is None
    r["records"][0]["status"] = "oom"
    assert assess(r)["reliable"] is False and assess(r)["threads"] is None


def test_the_busy_warning_reads_as_a_sentence():
    from advisor.bench.runner import _busy_warnings

    env = {"cpu_others": 0.9, "cpu_capacity": 2}
    (w,) = _busy_warnings(env, {"cpu_usable_cpus": 2}, 2)
    assert w.startswith(
        "machine busy: other processes used 0.9 of 2 CPUs while timing; figures are pessimistic"
    )
    assert w.endswith("try --threads 1")  # was "the machine busy: ...: figures ..."
    assert _busy_warnings({"cpu_others": 0.0, "cpu_capacity": 2}, {"cpu_usable_cpus": 2}, 2) == []
