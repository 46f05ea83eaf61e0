"""`advisor bench --runtime`: each runtime timed after its outputs are checked against eager, the runtime in the
result and its store key, eager keys unchanged, and `--runtime all` compared side by side."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import advisor.runtime
from advisor.bench import BenchConfig
from advisor.bench.runner import benchmark_model
from advisor.cli.main import app
from advisor.errors import UsageError

pytest.importorskip("onnxruntime")
FAST = dict(device="cpu", batch_sizes=(1,), min_time=0.02, max_time=0.5, min_repeats=3, warmup=1, threads=1)
FAST_CLI = ["--device", "cpu", "-b", "1", "--min-time", "0.02", "--max-time", "0.5", "--min-repeats", "3",
            "--warmup", "1", "--threads", "1", "--no-flops", "--no-store"]  # fmt: skip


def test_an_onnxruntime_bench_runs_onnxruntime_and_records_the_check():
    r = benchmark_model("timm:test_efficientnet", BenchConfig(runtime="onnxruntime", **FAST), store=False)
    assert r.runtime == "onnxruntime" and r.config["runtime"] == "onnxruntime"
    assert r.runtime_choice is not None and r.runtime_choice["runtime"] == "onnxruntime"
    assert 0 <= r.runtime_choice["max_abs_diff"]["onnxruntime"] < 1e-3
    (rec,) = r.records
    assert rec.status == "ok" and rec.latency["p50_ms"] > 0


def test_onnxruntime_counts_the_source_models_weights_and_gmacs():
    # ONNX Runtime has no torch module: the weights (part of the peak-memory figure behind --max-memory-mb)
    # and the GMACs were missing, so the memory read 4-9 MB for models of 13-31 MB of weights.
    eager = benchmark_model("timm:test_efficientnet", BenchConfig(**FAST), store=False)
    ort = benchmark_model("timm:test_efficientnet", BenchConfig(runtime="onnxruntime", **FAST), store=False)
    assert ort.runtime == "onnxruntime"
    assert ort.n_params == eager.n_params > 0
    assert ort.weights_memory_mb == eager.weights_memory_mb and ort.weights_memory_mb["fp32"] > 1.0
    assert ort.gmacs is not None and ort.gmacs["gmacs"] == pytest.approx(eager.gmacs["gmacs"])
    # and results stored before the fix (no weights) are not served under the new key
    assert BenchConfig(runtime="onnxruntime", **FAST).settings("cpu")["runtime_record"] == 2


def test_eager_settings_keep_their_old_key_and_other_runtimes_get_their_own():
    eager = BenchConfig(**FAST).settings("cpu")
    assert "runtime" not in eager  # the stored results of earlier versions still match
    assert BenchConfig(runtime="onnxruntime", **FAST).settings("cpu")["runtime"] == "onnxruntime"
    with pytest.raises(UsageError, match="unknown runtime"):
        BenchConfig(runtime="tensorrt")


def test_runtime_all_compares_every_runtime_in_one_table(monkeypatch, tmp_path):
    monkeypatch.setattr(advisor.runtime, "RUNTIMES", ("eager", "onnxruntime"))  # compile takes minutes on CPU
    out = CliRunner().invoke(
        app, ["bench", "timm:test_efficientnet", "--runtime", "all", *FAST_CLI, "--format", "json"],
        env={"ADVISOR_CACHE_DIR": str(tmp_path)},
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [r["runtime"] for r in data["results"]] == ["torch", "onnxruntime"]
    rows = {row["runtime"]: row for row in data["runtimes"]}
    assert rows["eager"]["ran"] == "eager" and rows["eager"]["max_abs_diff_vs_eager"] is None
    assert rows["onnxruntime"]["ran"] == "onnxruntime" and rows["onnxruntime"]["p50_ms"] > 0
    assert rows["onnxruntime"]["max_abs_diff_vs_eager"] < 1e-3
