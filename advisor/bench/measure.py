"""Measuring one model: the timed forward for each precision x batch size (input pool, first call, warm-up, timing
under the memory monitor, OOM back-off), and the largest batch that fits."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from advisor.bench.config import BatchRecord, BenchConfig
from advisor.bench.memory import MemoryMonitor
from advisor.bench.timing import time_callable
from advisor.runtime import autocast, find_max_batch, run_with_oom_backoff, synchronize_fn

POOL_BYTES = 256 * 1024 * 1024  # at most this much memory for the pool of distinct input batches

DTYPES = {
    "fp32": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
    "amp_fp16": "float32",
    "amp_bf16": "float32",
}


def _vary(batch: tuple[Any, ...], i: int) -> tuple[Any, ...]:
    """A different batch of the same shape, dtype and value range (example batches are seeded, so all alike)."""
    import torch

    if i == 0:
        return batch
    g = torch.Generator().manual_seed(1000 + i)
    out = []
    for t in batch:
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            std = float(t.float().std()) if t.numel() > 1 else 1.0
            out.append(
                (torch.randn(t.shape, generator=g) * (std or 1.0) + float(t.float().mean())).to(t.dtype)
            )
        elif isinstance(t, torch.Tensor) and t.dtype in (torch.int64, torch.int32) and t.numel() > 1:
            lo, hi = int(t.min()), int(t.max())
            out.append(t if lo == hi else torch.randint(lo, hi + 1, t.shape, generator=g, dtype=t.dtype))
        else:
            out.append(t)
    return tuple(out)


def _place(batch: tuple[Any, ...], device: str, dtype: Any, channels_last: bool) -> tuple[Any, ...]:
    import torch

    out = []
    for t in batch:
        if isinstance(t, torch.Tensor):
            t = t.to(device)
            if t.is_floating_point() and dtype is not None:
                t = t.to(dtype)
            if channels_last and t.dim() == 4:
                t = t.contiguous(memory_format=torch.channels_last)
        out.append(t)
    return tuple(out)


def _nbytes(batch: tuple[Any, ...]) -> int:
    return sum(t.numel() * t.element_size() for t in batch if hasattr(t, "element_size"))


def _shapes(batch: tuple[Any, ...]) -> list[list[int]]:
    return [list(t.shape) for t in batch if hasattr(t, "shape")]


@dataclass
class Subject:
    """What is being measured: the loaded model, the torch module to time (None for other runtimes) and how to
    make example batches at the configured geometry."""

    loaded: Any
    module: Any
    runtime: str
    example: Callable[[int], tuple[Any, ...]]


@dataclass
class Measured:
    """Every record of a run, the cold-start figures, the max-batch search and the thread count used."""

    records: list[BatchRecord] = field(default_factory=list)
    cold: dict[str, Any] = field(default_factory=dict)
    max_batch: dict[str, Any] | None = None


def measure_all(subject: Subject, config: BenchConfig, device: str, n_threads: int, out: Measured) -> None:
    """Measure each configured precision in turn (records appended to ``out``); the module is back in fp32 after."""
    import torch

    for prec in config.precision:
        _measure_precision(subject, config, device, n_threads, prec, out)
    if subject.module is not None:
        subject.module.to(torch.float32)


def _prepare(
    subject: Subject, config: BenchConfig, device: str, n_threads: int, prec: str
) -> tuple[Any, Any] | BatchRecord:
    """(callable to time, dtype inputs are cast to) for a precision, or the failed record saying why not."""
    import torch

    if subject.runtime != "torch" or subject.module is None:
        if prec != "fp32":
            why = f"precision {prec} needs a torch module (runtime {subject.runtime})"
            return _failed(prec, config, device, n_threads, "error", why)
        return _forward_callable(subject.loaded), None
    dtype = getattr(torch, DTYPES[prec])
    try:
        subject.module.to(dtype)
        if config.channels_last:
            subject.module.to(memory_format=torch.channels_last)
    except Exception as e:  # noqa: BLE001
        return _failed(prec, config, device, n_threads, "error", f"cast failed: {e}")
    fn = torch.compile(subject.module, mode=config.compile_mode) if config.compile else subject.module
    return fn, (dtype if prec in ("fp16", "bf16") else None)


def _measure_precision(
    subject: Subject, config: BenchConfig, device: str, n_threads: int, prec: str, out: Measured
) -> None:
    """One record per requested batch size at this precision (skipping sizes above one that ran out of memory)."""
    prepared = _prepare(subject, config, device, n_threads, prec)
    if isinstance(prepared, BatchRecord):
        out.records.append(prepared)
        return
    fn, cast = prepared
    amp_dtype = prec.split("_", 1)[1] if prec.startswith("amp_") else None
    amp = _autocast_factory(device, amp_dtype)
    sync = synchronize_fn(device)
    first = True
    smallest_oom: int | None = None
    for bs_req in config.batch_sizes:
        rec = BatchRecord(
            precision=prec,
            requested_batch_size=bs_req,
            batch_size=None,
            status="ok",
            dtype=DTYPES[prec],
            autocast=amp_dtype and f"torch.autocast({amp_dtype})",
            channels_last=config.channels_last,
            compile_mode=config.compile_mode if config.compile else None,
            threads=n_threads,
            tf32=bool(config.tf32 and device.startswith("cuda")),
            device=device,
        )
        out.records.append(rec)
        if smallest_oom is not None and bs_req >= smallest_oom:
            rec.status, rec.error = "skipped", f"batch {smallest_oom} already ran out of memory"
            continue

        def run_one(bs: int, _first: bool = first) -> dict[str, Any]:
            return _measure(fn, subject.example, bs, device, cast, config, sync, amp, _first)

        try:
            bo = run_with_oom_backoff(
                run_one, bs_req, device=device, min_batch=1 if config.oom_backoff else bs_req
            )
        except Exception as e:  # noqa: BLE001 - one failing setting must not lose the others
            rec.status, rec.error = "error", f"{type(e).__name__}: {str(e)[:300]}"
            continue
        rec.oom_batches = bo.oom_batches
        if bo.oom_batches:
            smallest_oom = min(bo.oom_batches) if smallest_oom is None else min(smallest_oom, *bo.oom_batches)
        if bo.batch_size is None:
            rec.status, rec.error = "oom", f"out of memory down to batch {min(bo.oom_batches)}"
            continue
        _fill(rec, bo.result, bo.batch_size, bs_req, bool(bo.oom_batches))
        if first:
            if out.cold["first_call_s"] is None:
                out.cold["first_call_s"] = bo.result["first_call_s"]
            if config.compile:
                out.cold["compile_s"][prec] = bo.result["first_call_s"]
            first = False
    if config.find_max_batch and subject.module is not None and out.max_batch is None:
        out.max_batch = _search_max_batch(fn, subject.example, device, cast, amp, config, prec)


def _fill(rec: BatchRecord, m: dict[str, Any], bs: int, bs_req: int, backed_off: bool) -> None:
    """Copy one measurement into its record."""
    rec.batch_size = bs
    rec.latency = m["latency"].to_dict()
    rec.throughput_items_per_s = m["latency"].throughput(bs)
    rec.memory = m["memory"]
    rec.first_call_s = m["first_call_s"]
    rec.input_shapes = m["input_shapes"]
    rec.warnings = list(m["latency"].warnings)
    if backed_off:
        rec.warnings.append(f"batch {bs_req} ran out of memory; measured at batch {bs} instead")


def _autocast_factory(device: str, autocast_dtype: str | None) -> Callable[[], Any]:
    """A zero-argument context factory: ``torch.autocast`` for amp precisions, else a null context."""
    if autocast_dtype is None:
        return contextlib.nullcontext
    return lambda: autocast(device, autocast_dtype)


def _full_module(loaded: Any) -> Any:
    """The torch module to time and count: the feature module followed by the source head when there is one
    (what ``LoadedModel.forward`` computes, and what published GMACs and parameter counts include)."""
    module = getattr(loaded, "module", None)
    head = getattr(loaded, "head", None)
    if module is None or head is None:
        return module
    import torch

    features_module: Any = module
    head_module: Any = head

    class FeaturesThenHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = features_module
            self.head = head_module

        def forward(self, *batch: Any) -> Any:
            return self.head(self.features(*batch))

    return FeaturesThenHead().eval()


def _forward_callable(loaded: Any) -> Callable[..., Any]:
    def fn(*batch: Any) -> Any:
        return loaded.forward(tuple(batch))

    return fn


def _failed(
    prec: str, config: BenchConfig, device: str, threads: int, status: str, error: str
) -> BatchRecord:
    return BatchRecord(
        precision=prec,
        requested_batch_size=config.batch_sizes[0],
        batch_size=None,
        status=status,
        dtype=DTYPES[prec],
        autocast=None,
        channels_last=config.channels_last,
        compile_mode=config.compile_mode if config.compile else None,
        threads=threads,
        tf32=config.tf32,
        device=device,
        error=error,
    )


def _pool_size(config: BenchConfig, batch_bytes: int) -> int:
    if config.pool_size:
        return config.pool_size
    return int(max(2, min(8, POOL_BYTES // max(1, batch_bytes))))


def _measure(
    fn: Any,
    example: Callable[[int], tuple[Any, ...]],
    bs: int,
    device: str,
    cast: Any,
    config: BenchConfig,
    sync: Callable[[], None] | None,
    amp: Callable[[], Any],
    first: bool,
) -> dict[str, Any]:
    """Make the input pool and do the (timed) first call and the warm-up calls under the memory monitor, then time.

    Memory is sampled only up to the end of the warm-up: one forward reaches the peak, and a sampling thread
    running during the timed calls would perturb them (it competes for the GIL).
    """
    import torch

    with torch.inference_mode(), amp():
        with MemoryMonitor(device) as mon:
            base = example(bs)
            pool = [
                _place(_vary(base, i), device, cast, config.channels_last)
                for i in range(_pool_size(config, _nbytes(base)))
            ]
            if sync:
                sync()
            t0 = time.perf_counter()
            fn(*pool[0])
            if sync:
                sync()
            first_call_s = time.perf_counter() - t0
            for i in range(config.warmup):
                fn(*pool[(i + 1) % len(pool)])
            if sync:
                sync()
        stats = time_callable(
            fn,
            pool,
            sync=sync,
            warmup=0,
            min_repeats=config.min_repeats,
            min_time=config.min_time,
            max_time=config.max_time,
            ci_rel_tol=config.ci_rel_tol,
        )
        stats = dataclasses.replace(stats, warmup=config.warmup)
        shapes = _shapes(pool[0])
        del pool
    assert mon.stats is not None
    return {
        "latency": stats,
        "memory": mon.stats.to_dict(),
        "first_call_s": first_call_s,
        "input_shapes": shapes,
    }


def _search_max_batch(
    fn: Any,
    example: Callable[[int], tuple[Any, ...]],
    device: str,
    cast: Any,
    amp: Callable[[], Any],
    config: BenchConfig,
    prec: str,
) -> dict[str, Any]:
    import torch

    def fits(bs: int) -> bool:
        batch = _place(example(bs), device, cast, config.channels_last)
        with torch.inference_mode(), amp():
            fn(*batch)
        sync = synchronize_fn(device)
        if sync:
            sync()
        return True

    best, oom = find_max_batch(
        fits, start=max(config.batch_sizes), limit=config.max_batch_limit, device=device
    )
    return {
        "precision": prec,
        "largest_batch_that_fits": best,
        "oom_batches": oom,
        "limit": config.max_batch_limit,
        "method": "doubling from the largest requested batch, then bisection; one forward per try",
    }
