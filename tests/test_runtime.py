"""advisor.runtime: device resolution, precision/autocast, OOM detection and back-off, thread settings."""

from __future__ import annotations

import pytest
import torch

from advisor import runtime
from advisor.errors import UsageError


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    assert runtime.resolve_device("auto") == torch.device("cpu")
    assert runtime.resolve_device(None) == torch.device("cpu")
    monkeypatch.setattr(runtime, "_mps_available", lambda: True)
    assert runtime.resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.resolve_device("auto") == torch.device("cuda")
    assert runtime.resolve_device(" CUDA:1 ") == torch.device("cuda:1")


def test_unavailable_or_unknown_device_is_a_usage_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    with pytest.raises(UsageError, match="CUDA is not available"):
        runtime.resolve_device("cuda")
    with pytest.raises(UsageError, match="MPS is not available"):
        runtime.resolve_device("mps")
    with pytest.raises(UsageError, match="unknown device 'tpu'") as e:
        runtime.resolve_device("tpu")
    assert "auto, cpu, cuda, mps" in (e.value.hint or "")
    dev = torch.device("cpu")
    assert runtime.resolve_device(dev) is dev


def test_device_kind_resolves_auto_and_strips_the_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    assert runtime.device_kind("auto") == "cpu"
    assert runtime.device_kind("cuda:3") == "cuda"
    assert runtime.device_kind(torch.device("cpu")) == "cpu"


def test_the_old_entry_points_are_the_runtime_implementation():
    from advisor.bench import memory
    from advisor.models import device as model_device

    assert model_device.resolve_device is runtime.resolve_device
    assert memory.is_oom_error is runtime.is_oom_error
    assert memory.run_with_oom_backoff is runtime.run_with_oom_backoff


@pytest.mark.parametrize(
    ("requested", "device", "cuda_bf16", "expected"),
    [
        ("auto", "cpu", False, "fp32"),
        ("bf16", "cpu", False, "fp32"),  # no CPU autocast for inference
        ("auto", "cuda", True, "bf16"),
        ("auto", "cuda", False, "fp16"),
        ("fp16", "cuda", True, "fp16"),
        ("auto", "mps", False, "fp16"),
    ],
)
def test_resolve_precision(monkeypatch, requested, device, cuda_bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: cuda_bf16)
    assert runtime.resolve_precision(requested, torch.device(device)) == expected


def test_unknown_precision_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown precision 'int4'") as info:
        runtime.resolve_precision("int4", torch.device("cpu"))
    assert info.value.hint == "use one of auto, fp32, bf16, fp16"


def test_check_choice_names_the_value_and_the_choices():
    from advisor.errors import check_choice

    assert check_choice("b", ("a", "b"), "letter") is None
    with pytest.raises(UsageError) as info:
        check_choice("z", ("a", "b"), "letter")
    assert (info.value.message, info.value.hint) == ("unknown letter 'z'", "use one of a, b")


def test_autocast_contexts():
    x = torch.randn(4, 4)
    with runtime.autocast("cpu", "amp_bf16"):
        assert (x @ x).dtype == torch.bfloat16
    with runtime.autocast(torch.device("cpu"), "bf16"):
        assert (x @ x).dtype == torch.bfloat16
    with runtime.autocast("cpu", "bf16", on_cpu=False):
        assert (x @ x).dtype == torch.float32
    for p in ("fp32", None):
        with runtime.autocast("cpu", p):
            assert (x @ x).dtype == torch.float32


def test_is_oom_error():
    assert runtime.is_oom_error(torch.OutOfMemoryError("CUDA out of memory"))
    assert runtime.is_oom_error(MemoryError())
    assert runtime.is_oom_error(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"))
    assert runtime.is_oom_error(RuntimeError("MPS backend out of memory"))
    assert not runtime.is_oom_error(RuntimeError("shape mismatch"))
    assert not runtime.is_oom_error(ValueError("out of memory"))  # only allocator errors


def test_backoff_halves_until_it_fits_and_records_the_failures():
    calls = []

    def run(bs: int) -> str:
        calls.append(bs)
        if bs > 5:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return f"ran {bs}"

    out = runtime.run_with_oom_backoff(run, 24)
    assert (out.batch_size, out.result, out.oom_batches, calls) == (3, "ran 3", [24, 12, 6], [24, 12, 6, 3])


def test_backoff_gives_none_when_nothing_fits_and_reraises_other_errors():
    def never(bs: int) -> None:
        raise MemoryError

    out = runtime.run_with_oom_backoff(never, 4, min_batch=2)
    assert out.batch_size is None and out.oom_batches == [4, 2]

    def broken(bs: int) -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        runtime.run_with_oom_backoff(broken, 8)


def test_find_max_batch_doubles_then_bisects():
    best, oom = runtime.find_max_batch(
        lambda bs: (_ for _ in ()).throw(MemoryError()) if bs > 37 else True, start=4, limit=1000
    )
    assert best == 37 and 64 in oom and all(b > 37 for b in oom)
    assert runtime.find_max_batch(lambda bs: bs <= 3 or False, start=4) == (None, [])


def test_num_threads_sets_and_restores():
    before = torch.get_num_threads()
    with runtime.num_threads(1) as n:
        assert n == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with runtime.num_threads(None) as n:
        assert n == before
    with pytest.raises(KeyError), runtime.num_threads(1):
        raise KeyError("restored even on error")
    assert torch.get_num_threads() == before


def test_numerics_sets_tf32_explicitly_and_restores():
    old = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    with runtime.numerics("cpu", tf32=True, threads=1, cudnn_benchmark=False) as n:
        assert n == 1
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert not torch.backends.cudnn.benchmark
    assert (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    ) == old


def test_synchronize_fn_is_none_on_cpu():
    assert runtime.synchronize_fn("cpu") is None
    assert callable(runtime.synchronize_fn("cuda:0"))
