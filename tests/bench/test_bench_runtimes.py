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


def test_a_local_onnx_model_counts_its_file_as_weights_and_an_unknown_weight_is_no_zero_peak(tmp_path):
    """A module-less ONNX model had no weights figure, so recommend's peak memory read 0 MB (the RSS growth of a
    session allocated before timing): its weights are now the graph file's size, and where no weights are known at
    all the peak is unknown, not the working memory alone."""
    import torch

    from advisor.bench.reliability import Measured, assess
    from advisor.recommend.config import RunConfig
    from advisor.recommend.measure import _bench_summary

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3), torch.nn.ReLU()).eval()
    path = tmp_path / "net.onnx"
    torch.onnx.export(
        net, (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, input_names=["x"], output_names=["f"],
        dynamic_axes={"x": {0: "b"}},
    )  # fmt: skip
    r = benchmark_model(f"local:{path}?input_size=32", BenchConfig(**FAST), store=False)
    file_mb = path.stat().st_size / 2**20
    assert r.runtime == "onnx" and r.weights_memory_mb["fp32"] == pytest.approx(file_mb, abs=1e-3)
    assert "size of the model file" in (r.weights_note or "")
    d = r.to_dict()
    summary = _bench_summary(Measured(d, assess(d), False, 0, None), RunConfig(data="x"))
    assert summary["peak_memory_mb"] is not None and summary["peak_memory_mb"] >= file_mb
    d["weights_memory_mb"] = {}
    assert (
        _bench_summary(Measured(d, assess(d), False, 0, None), RunConfig(data="x"))["peak_memory_mb"] is None
    )
