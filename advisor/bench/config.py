"""The benchmark's records: `BenchConfig` (how to measure, serialised into every result), `BatchRecord` (one
precision x batch size measurement with its settings) and `BenchResult` (a whole run with provenance)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from advisor.errors import UsageError
from advisor.io import field_names

SCHEMA_VERSION = 1
RUNTIME_RECORD_VERSION = 2  # the store key of non-eager runs (see BenchConfig.settings)
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
        runtime: the forward's runtime (`advisor.models.runtimes`): ``eager`` (the model as loaded), ``auto``,
            ``channels-last``, ``onnxruntime``, ``compile``; each is checked against eager before it is timed,
            and a runtime that fails or differs is timed as eager with the reason in the warnings.
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
    runtime: str = "eager"

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
        from advisor.runtime import check_runtime

        check_runtime(self.runtime)
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
        """JSON-ready fields (tuples as lists)."""
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchConfig:
        """The config a `to_dict` wrote (unknown keys ignored, lists back to tuples)."""
        names = field_names(cls)
        kw: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
        return cls(**kw)

    def settings(self, device: str) -> dict[str, Any]:
        """The settings that change the figures (device resolved), the basis of the store key."""
        d = self.to_dict()
        d["device"] = device
        if d["runtime"] == "eager":  # keys of eager runs are those of results stored before runtimes existed
            del d["runtime"]
        else:
            # 2: weights and GMACs of a derived runtime are the source model's (1 stored none for onnxruntime)
            d["runtime_record"] = RUNTIME_RECORD_VERSION
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
        """All fields as a dict."""
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
    # `advisor.models.runtimes.RuntimeChoice` when a runtime other than eager was asked for
    runtime_choice: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """All fields, records as dicts, plus the units of every figure."""
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
        """The result a `to_dict` wrote (unknown keys ignored)."""
        names = field_names(cls)
        kw = {k: v for k, v in d.items() if k in names}
        kw["records"] = [BatchRecord(**r) for r in d.get("records", [])]
        return cls(**kw)

    def ok_records(self) -> list[BatchRecord]:
        """The records that measured something (status ``ok``)."""
        return [r for r in self.records if r.status == "ok"]
