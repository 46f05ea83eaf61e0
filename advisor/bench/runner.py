"""`benchmark_model`: load a model (random weights by default), then measure latency, throughput, memory, cold start
and GMACs for each precision x batch size, compare with published figures, and store the result.

Every figure carries the settings that made it (device, dtype, autocast, channels-last, compile mode, threads,
TF32, batch size) and the hardware fingerprint; the whole run config is serialised into the result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from advisor.bench.flops import count_gmacs, within
from advisor.bench.hardware import device_class, hardware_fingerprint
from advisor.bench.memory import MB, MemoryMonitor, weights_bytes
from advisor.bench.published import published_gmacs, published_throughput
from advisor.bench.timing import time_callable
from advisor.errors import BenchError, UsageError
from advisor.io import stable_hash
from advisor.runtime import (
    autocast,
    find_max_batch,
    is_oom_error,
    numerics,
    resolve_device,
    run_with_oom_backoff,
    synchronize_fn,
)

SCHEMA_VERSION = 1
PRECISIONS = ("fp32", "fp16", "bf16", "amp_fp16", "amp_bf16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
POOL_BYTES = 256 * 1024 * 1024  # at most this much memory for the pool of distinct input batches
RANDOM_INIT_NOTE = (
    "random initialisation (pretrained=False): weights are not needed to time a model; latency, memory and "
    "GMACs do not depend on the weight values"
)


@dataclass(frozen=True)
class BenchConfig:
    """How to benchmark. Serialised into every result.

    Attributes:
        device: ``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
        batch_sizes: batch sizes to time.
        precision: any of ``fp32``, ``fp16``, ``bf16`` (weights and inputs cast), ``amp_fp16``, ``amp_bf16``
            (fp32 weights under ``torch.autocast``).
        channels_last: NHWC memory format for 4-D inputs and the module.
        compile: wrap the module with ``torch.compile`` (compile time reported as cold start).
        compile_mode: ``torch.compile`` mode.
        threads: intra-op CPU threads (``torch.set_num_threads``) during the run; None = torch's default.
        tf32: allow TF32 matmuls/convolutions on CUDA in fp32 runs. Off unless asked: never switched on silently.
        cudnn_benchmark: let cuDNN pick the fastest convolution algorithm per shape (as timm's benchmark does);
            the search happens in the warm-up calls.
        input_size, seq_len, clip_seconds: input geometry overrides (image side px, tokens, audio seconds).
        min_time, max_time, min_repeats, warmup, ci_rel_tol: timing discipline (see `time_callable`).
        pool_size: distinct input batches cycled while timing (None: as many as fit in 256 MiB, 2..8).
        pretrained: load real weights (slower, may need a download); False times a randomly initialised model.
        count_flops: count GMACs (batch 1, native size) and compare with published figures.
        oom_backoff: on out-of-memory, retry a smaller batch (recorded) instead of failing.
        find_max_batch: also search the largest batch that fits (doubling, then bisection) up to max_batch_limit.
    """

    device: str = "auto"
    batch_sizes: tuple[int, ...] = (1, 8)
    precision: tuple[str, ...] = ("fp32",)
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"
    threads: int | None = None
    tf32: bool = False
    cudnn_benchmark: bool = True
    input_size: int | None = None
    seq_len: int | None = None
    clip_seconds: float | None = None
    min_time: float = 1.0
    max_time: float = 30.0
    min_repeats: int = 10
    warmup: int = 3
    ci_rel_tol: float = 0.01
    pool_size: int | None = None
    pretrained: bool = False
    count_flops: bool = True
    oom_backoff: bool = True
    find_max_batch: bool = False
    max_batch_limit: int = 1024

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_sizes", tuple(int(b) for b in self.batch_sizes))
        prec = (self.precision,) if isinstance(self.precision, str) else tuple(self.precision)
        object.__setattr__(self, "precision", tuple(p.strip().lower() for p in prec))
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise UsageError(
                f"batch sizes must be positive integers, got {list(self.batch_sizes)}",
                hint="e.g. --batch-sizes 1,8,32",
            )
        bad = [p for p in self.precision if p not in PRECISIONS]
        if bad or not self.precision:
            raise UsageError(
                f"unknown precision {', '.join(bad) or '(none)'}", hint=f"use {', '.join(PRECISIONS)}"
            )
        if self.compile_mode not in COMPILE_MODES:
            raise UsageError(
                f"unknown compile mode {self.compile_mode!r}", hint=f"use {', '.join(COMPILE_MODES)}"
            )
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {self.threads}")
        if self.min_time < 0 or self.max_time <= 0 or self.min_repeats < 1 or self.warmup < 0:
            raise UsageError("timing limits must be positive (min-time >= 0, max-time > 0, min-repeats >= 1)")
        for name in ("input_size", "seq_len"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
        if self.clip_seconds is not None and self.clip_seconds <= 0:
            raise UsageError(f"--clip-seconds must be > 0, got {self.clip_seconds}")

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})

    def settings(self, device: str) -> dict[str, Any]:
        """The settings that change the figures (device resolved), the basis of the store key."""
        d = self.to_dict()
        d["device"] = device
        return d


@dataclass
class BatchRecord:
    """One (precision, batch size) measurement with every setting that produced it.

    ``status``: ``ok``; ``oom`` (nothing fitted, even after back-off); ``skipped`` (a smaller batch already ran out
    of memory); ``error`` (``error`` says why). ``batch_size`` is what ran (smaller than ``requested_batch_size``
    after an OOM back-off, listed in ``oom_batches``). Latency in ms per batch, throughput in items/s,
    memory in MiB.
    """

    precision: str
    requested_batch_size: int
    batch_size: int | None
    status: str
    dtype: str
    autocast: str | None
    channels_last: bool
    compile_mode: str | None
    threads: int
    tf32: bool
    device: str
    input_shapes: list[list[int]] = field(default_factory=list)
    latency: dict[str, Any] | None = None
    throughput_items_per_s: float | None = None
    memory: dict[str, Any] | None = None
    first_call_s: float | None = None
    oom_batches: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class BenchResult:
    """The result of `benchmark_model`: per-batch records plus cold start, GMACs, published comparison, provenance.

    Units are in the field names: ``*_ms`` milliseconds, ``*_s`` seconds, ``*_mb`` MiB, ``gmacs`` billions of
    multiply-accumulates per sample, ``throughput_items_per_s`` items (samples) per second.
    """

    model_id: str
    pretrained: bool
    weights_note: str | None
    runtime: str
    modality: str | None
    device: str
    device_class: str
    config: dict[str, Any]
    settings_key: str
    key: str
    hardware: dict[str, Any]
    created_at: str
    cold_start: dict[str, Any]
    n_params: int | None
    weights_memory_mb: dict[str, float]
    gmacs: dict[str, Any] | None
    gmacs_published: list[dict[str, Any]]
    records: list[BatchRecord]
    published_comparison: list[dict[str, Any]]
    max_batch: dict[str, Any] | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds_total: float = 0.0
    from_cache: bool = False
    # `reliability.assess` of the figure: spread, load average, threads, reliable flag and reasons
    reliability: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["records"] = [r.to_dict() for r in self.records]
        d["units"] = {
            "latency": "ms per batch",
            "throughput": "items/s",
            "memory": "MiB",
            "gmacs": "1e9 multiply-accumulates per sample",
            "cold_start": "s",
        }
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchResult:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["records"] = [BatchRecord(**r) for r in d.get("records", [])]
        return cls(**kw)

    def ok_records(self) -> list[BatchRecord]:
        return [r for r in self.records if r.status == "ok"]


# ------------------------------------------------------------------------------------------------ model loading
Loader = Callable[..., Any]


def default_loader(model_id: str, *, device: str, pretrained: bool) -> Any:
    """Load through ``advisor.models.load_model`` (the only place models are built)."""
    from advisor.models import load_model

    return load_model(model_id, device=device, pretrained=pretrained)


def _load(load: Loader, model_id: str, device: str, pretrained: bool) -> tuple[Any, str | None]:
    """Load for timing: random init by default; real weights when the model has no random-init variant (ONNX
    graphs, packaged weights); random init when real weights were asked for but are unavailable offline."""
    from advisor.errors import ModelLoadError, WeightsUnavailableOffline

    try:
        return load(model_id, device=device, pretrained=pretrained), None
    except WeightsUnavailableOffline as e:
        if not pretrained:
            raise
        try:
            return load(model_id, device=device, pretrained=False), (
                f"weights unavailable ({e.message}); timed with random initialisation instead"
            )
        except ModelLoadError:
            raise e from None
    except ModelLoadError as e:
        if pretrained:
            raise
        try:
            return load(model_id, device=device, pretrained=True), (
                f"no random-initialisation variant ({e.message}); timed with the real weights"
            )
        except ModelLoadError:
            raise e from None


def _resolve_device(device: str) -> str:
    return str(resolve_device(device))


_DTYPES = {
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


# ------------------------------------------------------------------------------------------------ the run
def benchmark_model(
    model_id: str,
    config: BenchConfig | None = None,
    *,
    store: bool = True,
    reuse: bool = False,
    loader: Loader | None = None,
    store_path: Any = None,
    load_fn: Callable[[], float | None] | None = None,
) -> BenchResult:
    """Benchmark one model: latency p50/p90/p99/IQR and throughput per batch size and precision, peak memory,
    cold start, GMACs (with published comparison), on this machine; append the result to the SQLite store.

    Args:
        model_id: a catalog id (``timm:resnet18``, ``torchvision:mobilenet_v3_small``, ``hf:...``) or a local path.
        config: how to measure (`BenchConfig`); default settings when None.
        store: append the result to ``cache_dir()/bench.sqlite``.
        reuse: return a stored result with the same key (model + settings + hardware) instead of measuring, unless
            that figure was unreliable when measured (large spread or busy machine: `reliability.reusable`).
        loader: ``loader(model_id, device=..., pretrained=...) -> LoadedModel``; default `advisor.models.load_model`.
        store_path: a different SQLite file (tests, benchmarks).
        load_fn: source of the 1-minute load average (default ``os.getloadavg``); tests simulate a busy machine.

    Returns:
        `BenchResult` (``from_cache=True`` when reused).

    Raises:
        UsageError: invalid settings or unavailable device. ModelLoadError / WeightsUnavailableOffline: the
        model cannot be built. BenchError: the model cannot run at all with these settings.
    """
    from advisor.bench.store import ResultsStore

    t_all = time.perf_counter()
    config = config or BenchConfig()
    device = _resolve_device(config.device)
    hw = hardware_fingerprint()
    settings = config.settings(device)
    settings_key = stable_hash(settings)
    key = stable_hash({"model_id": model_id, "settings": settings_key, "hardware": hw["key"]})
    db = ResultsStore(store_path) if (store or reuse) else None
    if reuse and db is not None:
        from advisor.bench.reliability import reusable

        hit = db.get(key)
        if hit is not None and reusable(hit):
            res = BenchResult.from_dict(hit)
            res.from_cache = True
            return res

    import torch

    load_of = load_fn or _loadavg
    load_before = load_of()
    load = loader or default_loader
    t0 = time.perf_counter()
    loaded, load_note = _load(load, model_id, device, config.pretrained)
    load_s = time.perf_counter() - t0
    pretrained = bool(getattr(loaded, "pretrained", config.pretrained))
    module = _full_module(loaded)
    runtime = getattr(loaded, "runtime", "torch")
    warnings: list[str] = [load_note] if load_note else []
    geometry = {
        "input_size": config.input_size,
        "seq_len": config.seq_len,
        "clip_seconds": config.clip_seconds,
    }

    def example(bs: int) -> tuple[Any, ...]:
        return tuple(loaded.example_batch(bs, **geometry))

    n_params = None
    weights_mb: dict[str, float] = {}
    if module is not None:
        module.eval()
        for p in config.precision:
            wb = weights_bytes(module, p)
            weights_mb[p] = round(wb["weights_mb"], 3)
            n_params = wb["n_params"]

    # GMACs: batch 1, native size, fp32, before any cast/compile.
    gm = None
    pub_g: list[dict[str, Any]] = []
    one = example(1)
    native = _native_size(one, getattr(loaded, "modality", None))
    if config.count_flops and module is not None:
        gm = count_gmacs(module, _place(one, device, None, False)).to_dict()
        pub_g = published_gmacs(model_id, config.input_size or native)
        for p in pub_g:
            measured = gm.get(p["compare_with"])
            p["measured"] = measured
            p["rel_err"] = (
                (measured - p["gmacs"]) / p["gmacs"] if measured is not None and p["gmacs"] else None
            )
            p["within_1pct"] = p["rel_err"] is not None and abs(p["rel_err"]) <= 0.01
            # The tables round (timm to 2 decimals, torchvision to 3): a count that rounds to the published
            # value also matches (e.g. test_vit: 0.038 counted, 0.04 published).
            p["matches_published"] = within(
                measured, p["gmacs"], 0.01, decimals=2 if p["column"] == "infer_gmacs" else 3
            )
            p["match_rule"] = "within 1 %, or equal after rounding to the published decimals"
            if not p["matches_published"]:
                warnings.append(
                    f"GMACs {measured} differ from published {p['gmacs']} ({p['source']}) by more than 1%"
                )
    elif module is None:
        warnings.append(f"GMACs not counted: runtime {runtime!r} has no torch module")

    records: list[BatchRecord] = []
    cold: dict[str, Any] = {
        "load_s": load_s,
        "first_call_s": None,
        "compile_s": {},
        "method": (
            "load_s: load_model wall time; first_call_s: first forward at the first batch size, device synchronised"
        ),
    }
    max_batch = None
    sync = synchronize_fn(device)
    with numerics(
        device, tf32=config.tf32, threads=config.threads, cudnn_benchmark=config.cudnn_benchmark
    ) as n_threads:
        for prec in config.precision:
            dtype = getattr(torch, _DTYPES[prec])
            autocast = prec.split("_", 1)[1] if prec.startswith("amp_") else None
            if runtime != "torch" or module is None:
                if prec != "fp32":
                    records.append(
                        _failed(
                            prec,
                            config,
                            device,
                            n_threads,
                            "error",
                            f"precision {prec} needs a torch module (runtime {runtime})",
                        )
                    )
                    continue
                fn = _forward_callable(loaded)
                cast = None
            else:
                try:
                    module.to(dtype)
                    if config.channels_last:
                        module.to(memory_format=torch.channels_last)
                except Exception as e:  # noqa: BLE001
                    records.append(_failed(prec, config, device, n_threads, "error", f"cast failed: {e}"))
                    continue
                fn = torch.compile(module, mode=config.compile_mode) if config.compile else module
                cast = dtype if prec in ("fp16", "bf16") else None
            amp = _autocast_factory(device, autocast)
            first_of_precision = True
            smallest_oom: int | None = None
            for bs_req in config.batch_sizes:
                rec = BatchRecord(
                    precision=prec,
                    requested_batch_size=bs_req,
                    batch_size=None,
                    status="ok",
                    dtype=str(dtype).replace("torch.", ""),
                    autocast=autocast and f"torch.autocast({autocast})",
                    channels_last=config.channels_last,
                    compile_mode=config.compile_mode if config.compile else None,
                    threads=n_threads,
                    tf32=bool(config.tf32 and device.startswith("cuda")),
                    device=device,
                )
                if smallest_oom is not None and bs_req >= smallest_oom:
                    rec.status, rec.error = "skipped", f"batch {smallest_oom} already ran out of memory"
                    records.append(rec)
                    continue

                def run_one(
                    bs: int,
                    _rec: BatchRecord = rec,
                    _fn: Any = fn,
                    _cast: Any = cast,
                    _amp: Any = amp,
                    _first: bool = first_of_precision,
                ) -> dict[str, Any]:
                    return _measure(_fn, example, bs, device, _cast, config, sync, _amp, _first)

                try:
                    if config.oom_backoff:
                        bo = run_with_oom_backoff(run_one, bs_req, device=device)
                    else:
                        bo = run_with_oom_backoff(run_one, bs_req, device=device, min_batch=bs_req)
                except Exception as e:  # noqa: BLE001 - one failing setting must not lose the others
                    rec.status, rec.error = "error", f"{type(e).__name__}: {str(e)[:300]}"
                    records.append(rec)
                    continue
                rec.oom_batches = bo.oom_batches
                if bo.oom_batches:
                    smallest_oom = (
                        min(bo.oom_batches) if smallest_oom is None else min(smallest_oom, *bo.oom_batches)
                    )
                if bo.batch_size is None:
                    rec.status, rec.error = "oom", f"out of memory down to batch {min(bo.oom_batches)}"
                    records.append(rec)
                    continue
                m = bo.result
                rec.batch_size = bo.batch_size
                rec.latency = m["latency"].to_dict()
                rec.throughput_items_per_s = m["latency"].throughput(bo.batch_size)
                rec.memory = m["memory"]
                rec.first_call_s = m["first_call_s"]
                rec.input_shapes = m["input_shapes"]
                rec.warnings = list(m["latency"].warnings)
                if bo.oom_batches:
                    rec.warnings.append(
                        f"batch {bs_req} ran out of memory; measured at batch {bo.batch_size} instead"
                    )
                if first_of_precision:
                    if cold["first_call_s"] is None:
                        cold["first_call_s"] = m["first_call_s"]
                    if config.compile:
                        cold["compile_s"][prec] = m["first_call_s"]
                    first_of_precision = False
                records.append(rec)
            if config.find_max_batch and module is not None and max_batch is None:
                max_batch = _search_max_batch(fn, example, device, cast, amp, config, prec)
        if module is not None:
            module.to(torch.float32)

    env = {
        "loadavg_1m_before": load_before,
        "loadavg_1m_after": load_of(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "torch_threads": n_threads,
    }
    from advisor.bench.reliability import assess, machine_busy

    busy = max(v for v in (load_before, env["loadavg_1m_after"], 0.0) if v is not None)
    usable = hw.get("cpu_usable_cpus") or 1
    if machine_busy(busy, usable):
        warnings.append(
            f"the machine was busy (1-min load average {busy:.1f} > {usable} usable CPUs): "
            "figures are pessimistic and noisy"
            + (
                f"; with {n_threads} threads per op, OpenMP threads wait on each other: try --threads 1"
                if n_threads > 1
                else ""
            )
        )
    if cold["first_call_s"] is not None:
        cold["cold_start_s"] = load_s + cold["first_call_s"]
    fp_dev = device_class(hw, device)
    comparison = _compare_published(model_id, device, config.input_size or native, records)
    result = BenchResult(
        model_id=model_id,
        pretrained=pretrained,
        weights_note=None if pretrained else RANDOM_INIT_NOTE,
        runtime=runtime,
        modality=getattr(loaded, "modality", None),
        device=device,
        device_class=fp_dev,
        config=config.to_dict(),
        settings_key=settings_key,
        key=key,
        hardware=hw,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        cold_start=cold,
        n_params=n_params,
        weights_memory_mb=weights_mb,
        gmacs=gm,
        gmacs_published=pub_g,
        records=records,
        published_comparison=comparison,
        max_batch=max_batch,
        environment=env,
        warnings=warnings,
    )
    if not result.ok_records():
        errs = "; ".join(f"{r.precision}/bs{r.requested_batch_size}: {r.error}" for r in records)
        raise BenchError(
            f"{model_id}: no setting could run on {device} ({errs})",
            hint="try --precision fp32, smaller --batch-sizes or --device cpu",
        )
    result.seconds_total = time.perf_counter() - t_all
    result.reliability = assess(result.to_dict())
    if store and db is not None:
        db.put(result)
    return result


def _autocast_factory(device: str, autocast_dtype: str | None) -> Callable[[], Any]:
    """A zero-argument context factory: ``torch.autocast`` for amp precisions, else a null context."""
    if autocast_dtype is None:
        return contextlib.nullcontext
    return lambda: autocast(device, autocast_dtype)


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _native_size(batch: tuple[Any, ...], modality: str | None) -> int | None:
    if modality in (None, "image") and batch and hasattr(batch[0], "dim") and batch[0].dim() == 4:
        return int(batch[0].shape[-1])
    return None


def _full_module(loaded: Any) -> Any:
    """The torch module to time and count: the feature module followed by the source head when there is one
    (what ``LoadedModel.forward`` computes, and what published GMACs and parameter counts include)."""
    module = getattr(loaded, "module", None)
    head = getattr(loaded, "head", None)
    if module is None or head is None:
        return module
    import torch

    class FeaturesThenHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = module
            self.head = head

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
        dtype=_DTYPES[prec],
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


def _compare_published(
    model_id: str, device: str, img_size: int | None, records: Sequence[BatchRecord]
) -> list[dict[str, Any]]:
    """Published (timm benchmark CSV) vs measured throughput, same model and device class, side by side."""
    rows = published_throughput(model_id, device, img_size)
    ok = [r for r in records if r.status == "ok" and r.throughput_items_per_s]
    out = []
    for row in rows:
        if not ok:
            break
        # The measured record closest in batch size (log scale), preferring the precision the table used.
        want = "fp32" if row.get("precision") == "fp32" else None
        cand = [r for r in ok if want is None or r.precision == want] or ok
        best = min(cand, key=lambda r: abs(math.log((r.batch_size or 1) / (row["batch_size"] or 1))))
        out.append(
            {
                "published": {
                    k: row[k]
                    for k in (
                        "file",
                        "accelerator",
                        "precision",
                        "layout",
                        "compiled",
                        "torch",
                        "img_size",
                        "batch_size",
                        "samples_per_sec",
                        "step_time_ms",
                    )
                },
                "measured": {
                    "precision": best.precision,
                    "batch_size": best.batch_size,
                    "throughput_items_per_s": best.throughput_items_per_s,
                    "p50_ms": (best.latency or {}).get("p50_ms"),
                    "device": device,
                },
                "ratio_measured_to_published": (
                    best.throughput_items_per_s / row["samples_per_sec"]
                    if row.get("samples_per_sec")
                    else None
                ),
                "note": "published: timm benchmark.py on the machine in the file name; measured: this machine",
            }
        )
    return out


def estimate_memory_mb(model_id: str, precision: str = "fp32") -> dict[str, Any]:
    """Weights-only memory estimate without downloading: the architecture built on the meta device.

    Works for timm and torchvision ids (built with random-init builders on ``meta``); raises BenchError otherwise.
    """
    from advisor.bench.memory import estimate_weights_mb, meta_builder

    build = meta_builder(model_id)
    if build is None:
        raise BenchError(f"cannot build {model_id} on the meta device", hint="use a timm: or torchvision: id")
    d = estimate_weights_mb(build, precision)
    d["model_id"] = model_id
    return d


__all__ = [
    "BenchConfig",
    "BenchResult",
    "BatchRecord",
    "benchmark_model",
    "estimate_memory_mb",
    "PRECISIONS",
    "MB",
    "is_oom_error",
]
