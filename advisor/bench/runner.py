"""`benchmark_model`: load a model (random weights by default), then measure latency, throughput, memory, cold start
and GMACs for each precision x batch size, compare with published figures, and store the result.

Every figure carries the settings that made it (device, dtype, autocast, channels-last, compile mode, threads,
TF32, batch size) and the hardware fingerprint; the whole run config is serialised into the result.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from advisor.bench.config import (
    COMPILE_MODES,
    PRECISIONS,
    RANDOM_INIT_NOTE,
    SCHEMA_VERSION,
    BatchRecord,
    BenchConfig,
    BenchResult,
)
from advisor.bench.contention import others_cpu
from advisor.bench.flops import count_gmacs, within
from advisor.bench.hardware import device_class, hardware_fingerprint
from advisor.bench.measure import Measured, Subject, _full_module, _place, measure_all
from advisor.bench.memory import MB, weights_bytes
from advisor.bench.published import published_gmacs, published_throughput
from advisor.errors import BenchError
from advisor.io import stable_hash
from advisor.runtime import is_oom_error, numerics, resolve_device

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
        note = f"weights unavailable ({e.message}); timed with random initialisation instead"
        return _load_instead(load, model_id, device, e, pretrained=False, note=note)
    except ModelLoadError as e:
        if pretrained:
            raise
        note = f"no random-initialisation variant ({e.message}); timed with the real weights"
        return _load_instead(load, model_id, device, e, pretrained=True, note=note)


def _load_instead(
    load: Loader, model_id: str, device: str, first: Exception, *, pretrained: bool, note: str
) -> tuple[Any, str | None]:
    """Load the other variant (`pretrained`) with `note` saying why; re-raise `first` when that fails too."""
    from advisor.errors import ModelLoadError

    try:
        return load(model_id, device=device, pretrained=pretrained), note
    except ModelLoadError:
        raise first from None


def _resolve_device(device: str) -> str:
    """The resolved device name (``auto`` -> cuda, mps or cpu)."""
    return str(resolve_device(device))


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
            When given, the CPU use of other processes is not measured and the load average decides.

    Returns `BenchResult` (``from_cache=True`` when reused).

    Raises:
        UsageError: invalid settings or unavailable device. ModelLoadError / WeightsUnavailableOffline: the
        model cannot be built. BenchError: the model cannot run at all with these settings.
        StorageError: the store cannot be written (read-only folder, full disk).
    """
    from advisor.bench.store import ResultsStore

    t_all = time.perf_counter()
    config = config or BenchConfig()
    device = _resolve_device(config.device)
    hw = hardware_fingerprint()
    settings_key = stable_hash(config.settings(device))
    key = stable_hash({"model_id": model_id, "settings": settings_key, "hardware": hw["key"]})
    db = ResultsStore(store_path) if (store or reuse) else None
    if reuse and db is not None and (hit := _stored(db, key)) is not None:
        return hit

    load_of = load_fn or _loadavg
    load_before = load_of()
    source, loaded, choice, load_s, warnings = _model_to_time(model_id, device, config, loader)
    subject = _subject(loaded, config)
    # Weights and GMACs are the source model's: a derived runtime (ONNX Runtime has no torch module) holds the
    # same weights and does the same arithmetic, and without them the memory figure (and --max-memory-mb)
    # would see only the working memory.
    counted = _full_module(source) if source is not loaded else subject.module
    n_params, weights_mb, file_note = _weights(counted, config.precision, source)
    gm, pub_g, native = _gmacs(subject, counted, model_id, config, device, warnings)
    cold = {"load_s": load_s, "method": COLD_METHOD if load_s is not None else REUSED_METHOD}
    out = Measured(cold=cold | {"first_call_s": None, "compile_s": {}})
    with (
        others_cpu() as others,
        numerics(
            device, tf32=config.tf32, threads=config.threads, cudnn_benchmark=config.cudnn_benchmark
        ) as n_threads,
    ):
        measure_all(subject, config, device, n_threads, out)
    load_after = load_of()
    env: dict[str, Any] = {
        "loadavg_1m_before": load_before,
        "loadavg_1m_after": load_after,
        "cpu_others": others.value if load_fn is None else None,
        "cpu_capacity": others.capacity,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "torch_threads": n_threads,
    }
    warnings += _busy_warnings(env, hw, n_threads)
    _finish_cold(out.cold, load_s)
    pretrained = bool(getattr(loaded, "pretrained", config.pretrained))
    result = BenchResult(
        model_id=model_id,
        pretrained=pretrained,
        weights_note="; ".join(n for n in (None if pretrained else RANDOM_INIT_NOTE, file_note) if n) or None,
        runtime=subject.runtime,
        modality=getattr(loaded, "modality", None),
        device=device,
        device_class=device_class(hw, device),
        config=config.to_dict(),
        settings_key=settings_key,
        key=key,
        hardware=hw,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        cold_start=out.cold,
        n_params=n_params,
        weights_memory_mb=weights_mb,
        gmacs=gm,
        gmacs_published=pub_g,
        records=out.records,
        published_comparison=_compare_published(model_id, device, config.input_size or native, out.records),
        max_batch=out.max_batch,
        environment=env,
        warnings=warnings,
        runtime_choice=choice,
    )
    return _finish(result, db if store else None, t_all)


def _finish_cold(cold: dict[str, Any], load_s: float | None) -> None:
    """Cold start = load + first call; a reused (warm) model's first call is no cold start, so none is claimed."""
    if load_s is None:
        cold["first_call_s"] = None
    elif cold["first_call_s"] is not None:
        cold["cold_start_s"] = load_s + cold["first_call_s"]


def _model_to_time(
    model_id: str, device: str, config: BenchConfig, loader: Loader | None
) -> tuple[Any, Any, dict[str, Any] | None, float | None, list[str]]:
    """(source model, model on the runtime, runtime choice, load seconds, warnings). The load seconds are None when
    this run's features stage already loaded it (`advisor.models.pool`): no second load, no second runtime check."""
    t0 = time.perf_counter()
    warnings: list[str] = []
    pooled = _pooled(model_id, device, config) if loader is None else None
    if pooled is not None:
        return pooled.source, pooled.model, _runtime_used(pooled.choice, config, warnings), None, warnings
    source, load_note = _load(loader or default_loader, model_id, device, config.pretrained)
    warnings += [load_note] if load_note else []
    loaded, choice = _with_runtime(source, config, warnings)
    return source, loaded, choice, time.perf_counter() - t0, warnings


def _with_runtime(loaded: Any, config: BenchConfig, warnings: list[str]) -> tuple[Any, dict[str, Any] | None]:
    """`loaded` on ``config.runtime`` (checked against eager); a fallback is a warning with the reason."""
    if config.runtime == "eager":
        return loaded, None
    from advisor.models.runtimes import with_runtime

    new, choice = with_runtime(loaded, config.runtime)
    return new, _runtime_used(choice, config, warnings)


def _runtime_used(choice: Any, config: BenchConfig, warnings: list[str]) -> dict[str, Any] | None:
    """The runtime choice as recorded; a forced runtime that fell back to eager adds a warning with the reason."""
    if choice is None:
        return None
    if config.runtime != "auto" and choice.runtime != config.runtime:
        why = choice.reasons.get(config.runtime, "not available")
        warnings.append(f"runtime {config.runtime} not used ({why}); timed with eager")
    return dict(choice.to_dict())


def _pooled(model_id: str, device: str, config: BenchConfig) -> Any:
    """The model this run already loaded for `model_id` on `device` and ``config.runtime``
    (`advisor.models.pool`), or None. Its weights may be the published ones: timing does not depend on them."""
    from advisor.models.pool import active_pool

    pool = active_pool()
    return pool.find(model_id, device, config.runtime) if pool is not None else None


def _finish(result: BenchResult, db: Any, t_all: float) -> BenchResult:
    """Refuse a run where nothing ran; else add the total time and the reliability assessment, and store it."""
    from advisor.bench.reliability import assess

    if not result.ok_records():
        errs = "; ".join(f"{r.precision}/bs{r.requested_batch_size}: {r.error}" for r in result.records)
        raise BenchError(
            f"{result.model_id}: no setting could run on {result.device} ({errs})",
            hint="try --precision fp32, smaller --batch-sizes or --device cpu",
        )
    result.seconds_total = time.perf_counter() - t_all
    result.reliability = assess(result.to_dict())
    if db is not None:
        db.put(result)
    return result


COLD_METHOD = (
    "load_s: load_model wall time; first_call_s: first forward at the first batch size, device synchronised"
)
REUSED_METHOD = "not measured: the model was reused from this run's features stage (already loaded and warm)"


def _stored(db: Any, key: str) -> BenchResult | None:
    """The stored result under ``key`` when it may be reused (reliable when measured), else None."""
    from advisor.bench.reliability import reusable

    hit = db.get(key)
    if hit is None or not reusable(hit):
        return None
    res = BenchResult.from_dict(hit)
    res.from_cache = True
    return res


def _subject(loaded: Any, config: BenchConfig) -> Subject:
    """The module to time (features + head) and the example-batch maker at the configured geometry."""
    geometry = {
        "input_size": config.input_size,
        "seq_len": config.seq_len,
        "clip_seconds": config.clip_seconds,
    }

    def example(bs: int) -> tuple[Any, ...]:
        return tuple(loaded.example_batch(bs, **geometry))

    module = _full_module(loaded)
    if module is not None:
        module.eval()
    return Subject(loaded, module, getattr(loaded, "runtime", "torch"), example)


def _model_file_mb(loaded: Any) -> float | None:
    """MiB of the graph file a module-less model runs from (ONNX, TFLite: its weights are in it), else None."""
    from pathlib import Path

    f = (getattr(loaded, "info", None) or {}).get("file")
    path = Path(str(f)) if f else None
    if path is None or path.suffix.lower() not in (".onnx", ".tflite") or not path.is_file():
        return None
    return round(path.stat().st_size / 2**20, 3)


def _weights(
    module: Any, precisions: Sequence[str], source: Any
) -> tuple[int | None, dict[str, float], str | None]:
    """(parameter count, weights MiB per precision, how they were found when not from the module).

    Without a torch module, the weights are the size of the graph file the model runs from (ONNX, TFLite), else
    unknown: (None, {}, None)."""
    n_params = None
    weights_mb: dict[str, float] = {}
    if module is not None:
        for p in precisions:
            wb = weights_bytes(module, p)
            weights_mb[p] = round(wb["weights_mb"], 3)
            n_params = wb["n_params"]
        return n_params, weights_mb, None
    file_mb = _model_file_mb(source)
    if file_mb is None:
        return None, {}, None
    note = f"weights memory: the size of the model file ({file_mb:.1f} MiB; the model has no torch module)"
    return None, {p: file_mb for p in precisions}, note


def _gmacs(
    subject: Subject,
    module: Any,
    model_id: str,
    config: BenchConfig,
    device: str,
    warnings: list[str],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], int | None]:
    """GMACs of `module` (the source model's torch module) at batch 1, native size, fp32, before any
    cast/compile/runtime, set beside the published figures.

    Returns (counted GMACs or None, published figures with the comparison, the native input size)."""
    one = subject.example(1)
    native = _native_size(one, getattr(subject.loaded, "modality", None))
    if module is None:
        warnings.append(f"GMACs not counted: runtime {subject.runtime!r} has no torch module")
        return None, [], native
    if not config.count_flops:
        return None, [], native
    gm = count_gmacs(module, _place(one, device, None, False)).to_dict()
    pub_g = published_gmacs(model_id, config.input_size or native)
    for p in pub_g:
        measured = gm.get(p["compare_with"])
        p["measured"] = measured
        p["rel_err"] = (measured - p["gmacs"]) / p["gmacs"] if measured is not None and p["gmacs"] else None
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
    return gm, pub_g, native


def _busy_warnings(env: dict[str, Any], hw: dict[str, Any], n_threads: int) -> list[str]:
    """A warning when the machine was busy while timing (`advisor.bench.reliability.busy_reason`)."""
    from advisor.bench.reliability import busy_reason

    busy = busy_reason(env, hw.get("cpu_usable_cpus") or 1, n_threads)
    if busy is None:
        return []
    threads = (
        f"; with {n_threads} threads per op, OpenMP threads wait on each other: try --threads 1"
        if n_threads > 1
        else ""
    )
    return [f"{busy}; figures are pessimistic and noisy" + threads]


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _native_size(batch: tuple[Any, ...], modality: str | None) -> int | None:
    if modality in (None, "image") and batch and hasattr(batch[0], "dim") and batch[0].dim() == 4:
        return int(batch[0].shape[-1])
    return None


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
    "COMPILE_MODES",
    "SCHEMA_VERSION",
    "BenchConfig",
    "BenchResult",
    "BatchRecord",
    "benchmark_model",
    "estimate_memory_mb",
    "PRECISIONS",
    "MB",
    "is_oom_error",
]
