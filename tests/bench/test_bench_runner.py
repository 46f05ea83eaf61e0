"""The runner: precisions and their recorded settings, settings restored afterwards, config validation."""

from __future__ import annotations

import pytest
import torch
from _bench_fakes import OomAbove, loader_for

from advisor.bench import BenchConfig, benchmark_model
from advisor.errors import BenchError, UsageError

FAST = {
    "device": "cpu",
    "min_time": 0.0,
    "min_repeats": 3,
    "max_time": 0.3,
    "warmup": 1,
    "count_flops": False,
}


def test_precisions_are_explicit_and_recorded():
    cfg = BenchConfig(batch_sizes=(2,), precision=("fp32", "bf16", "amp_bf16"), threads=1, **FAST)
    before = (torch.get_num_threads(), torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    res = benchmark_model("fake:lin", cfg, loader=loader_for(OomAbove(limit=100)), store=False)
    after = (torch.get_num_threads(), torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    assert before == after  # threads and TF32 flags are restored
    recs = {r.precision: r for r in res.records}
    assert recs["fp32"].dtype == "float32" and recs["fp32"].autocast is None
    assert recs["bf16"].dtype == "bfloat16" and recs["bf16"].autocast is None
    assert recs["amp_bf16"].dtype == "float32" and recs["amp_bf16"].autocast == "torch.autocast(bf16)"
    assert all(r.status == "ok" and r.threads == 1 and r.tf32 is False for r in res.records)
    assert res.weights_memory_mb["bf16"] == pytest.approx(res.weights_memory_mb["fp32"] / 2, rel=0.01)
    assert res.n_params == 12 * 4 + 4
    assert res.environment["torch_threads"] == 1


def test_a_model_that_never_fits_is_a_domain_error():
    cfg = BenchConfig(batch_sizes=(2,), **FAST)
    with pytest.raises(BenchError, match="fake:never"):
        benchmark_model("fake:never", cfg, loader=loader_for(OomAbove(limit=0)), store=False)


@pytest.mark.parametrize(
    "kw",
    [
        {"batch_sizes": (0,)},
        {"precision": ("int3",)},
        {"threads": 0},
        {"compile_mode": "fast"},
        {"min_time": -1},
    ],
)
def test_bad_config_is_a_usage_error(kw):
    with pytest.raises(UsageError):
        BenchConfig(**kw)


def test_models_without_random_init_are_timed_with_real_weights():
    from _bench_fakes import FakeLoaded

    from advisor.errors import ModelLoadError

    asked = []

    def load(model_id, *, device, pretrained):
        asked.append(pretrained)
        if not pretrained:
            raise ModelLoadError(f"{model_id} is an ONNX graph: it has no random-init variant")
        fake = FakeLoaded(OomAbove(limit=100))
        fake.pretrained = True
        return fake

    res = benchmark_model("fake:graph", BenchConfig(batch_sizes=(1,), **FAST), loader=load, store=False)
    assert asked == [False, True]
    assert res.pretrained is True and res.weights_note is None
    assert any("no random-initialisation variant" in w for w in res.warnings)
