"""The configuration of a recommend run (`RunConfig`), its plan record (`Plan`) and the run-wide constants."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from advisor.data.spec import ReaderOptions
from advisor.errors import UsageError
from advisor.recommend.candidates import Constraints

# Scores computed by default: the ones the literature found most useful, and cheap enough on CPU.
DEFAULT_SCORES: tuple[str, ...] = (
    "logme",
    "sfda_cv",
    "knn_loo",
    "ncm_loo",
    "hscore_shrinkage",
    "leep",
    "nce",
)
DEFAULT_MAX_SAMPLES = 2000  # subsample cap for scores and probes without --budget
# probed shortlist: on the ranking benchmark's 7 targets the top 8 of the scores stage held a model within 1 point
# of the ground-truth best in every subsample (top 5: 95-100 %); benchmarks/ranking/shortlist_study.py
DEFAULT_SHORTLIST = 8
CACHE_VERSION = 1

# Cost model for --budget and --dry-run (rough, documented): seconds per subsample item for feature extraction
# = 2 * gmacs * 1e9 / FLOPS[device kind] + DECODE_S; plus fixed costs per candidate.
# FLOPS are torch eager's; RUNTIME_SPEEDUP divides the forward time on CPU (ONNX Runtime ran EfficientNet-Lite0
# 4.1x faster than eager at batch 32 on the 2-core reference machine, channels-last 1.8x; the factors are lower, so
# a model that exports badly is not under-estimated). "probe" is per probed model, floors included (2-7 s measured
# on the demo's 400 samples; benchmarks/results/runtimes-demo-SUMMARY.md).
EFFECTIVE_FLOPS = {"cpu": 2.0e10, "cuda": 2.0e12, "mps": 2.0e11}
RUNTIME_SPEEDUP = {"auto": 2.5, "onnxruntime": 2.5, "channels-last": 1.5}
DECODE_S = 0.002
DEFAULT_GMACS = 2.0  # when the catalog does not know
FIXED_S = {"load": 3.0, "scores": 3.0, "bench": 8.0, "probe": 5.0}

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class RunConfig(ReaderOptions):
    """Every option of a recommend run (serialised into the results, so any figure can be traced): how to read
    the data (the `ReaderOptions`, keyword-only), then the run's own.

    Units are in the names. ``out``: run directory; "auto" = ``./advisor-runs/<timestamp>-<dataset>``;
    None = do not write files.
    """

    data: str
    group_pattern: str | None = None  # regex on file names (or ids); its first group (else the match) = group
    device: str = "auto"
    max_latency_ms: float | None = None
    latency_batch_size: int = 1
    max_params: float | None = None
    max_memory_mb: float | None = None
    license: str = "any"
    models: tuple[str, ...] = ()
    offline: bool = False
    budget_minutes: float | None = None
    max_candidates: int | None = None
    shortlist: int | None = None
    max_per_class: int | None = None
    max_samples: int | None = None
    scores: tuple[str, ...] = DEFAULT_SCORES
    folds: int = 5
    seed: int = 0
    bench: bool = True
    baselines: bool = True  # probe no-pretraining floors (raw pixels / bag of words) for reference
    bench_min_time_s: float = 0.5  # timing discipline of advisor.bench, lighter than `advisor bench` defaults
    bench_max_time_s: float = 10.0  # because recommend times every candidate
    bench_threads: int | None = None  # torch intra-op threads while timing (None: torch's default)
    rebench: bool = False  # re-measure even when a reliable stored figure with the same settings exists
    combine: str = "zscore"
    batch_size: int = 32
    runtime: str = "auto"  # features' runtime (advisor.models.runtimes): eager | auto | channels-last | ...
    finetune_top: int = (
        0  # fine-tune the K best candidates to check the probe ranking and the strategy advice
    )
    finetune_epochs: int = 3
    finetune_unfreeze: str | None = (
        None  # None: the advice's setting (last-2 when the advice is a linear probe)
    )
    finetune_budget_minutes: float | None = None  # per model; None: no cap beyond the epochs
    task: str | None = None  # a registered task (advisor.tasks); None: detected from the data
    ignore_index: int | None = None  # segmentation: the mask value not scored (None: 255, as VOC)
    roi_probe: bool = (
        True  # detection: run the ROI probe beside the crop probe (about doubles the proxy stage)
    )
    candidate_timeout_s: float | None = None  # features + scores of one candidate; None: no limit
    out: str | None = "auto"
    dry_run: bool = False
    progress: bool = False

    def __post_init__(self) -> None:
        from advisor.runtime import check_runtime

        check_runtime(self.runtime)
        if self.combine not in ("zscore", "rank"):
            raise UsageError(f"unknown --combine {self.combine!r}", hint="use zscore or rank")
        if self.budget_minutes is not None and self.budget_minutes <= 0:
            raise UsageError("--budget must be a positive number of minutes")
        if self.folds < 2:
            raise UsageError("--folds must be at least 2")
        if self.shortlist is not None and self.shortlist < 1:
            raise UsageError("--shortlist must be at least 1")
        if self.bench_threads is not None and self.bench_threads < 1:
            raise UsageError(f"--threads must be at least 1, got {self.bench_threads}")
        if self.candidate_timeout_s is not None and self.candidate_timeout_s <= 0:
            raise UsageError(
                f"--candidate-timeout must be a positive number of seconds, got {self.candidate_timeout_s}"
            )
        if self.task is not None:
            from advisor.tasks import TASKS

            TASKS.get(self.task)  # an unknown name is a usage error listing the valid ones
        from advisor.scores.api import resolve_metrics

        resolve_metrics(list(self.scores))  # an unknown name is a usage error listing the valid ones

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready config (tuples as lists), as stored in results.json."""
        d = dataclasses.asdict(self)
        d = {"data": d.pop("data"), **d}  # the data first, then how it is read (the inherited fields)
        d["models"] = list(self.models)
        d["scores"] = list(self.scores)
        return d

    def constraints(self, *, offline: bool | None = None, max_candidates: int | None = None) -> Constraints:
        """The candidate-selection constraints of this config: its fields of the same names (every `Constraints`
        field is one), `offline`/`max_candidates` overriding."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(Constraints)}
        own["models"] = tuple(self.models)
        if offline is not None:
            own["offline"] = offline
        if max_candidates is not None:
            own["max_candidates"] = max_candidates
        return Constraints(**own)


@dataclass
class Plan:
    """What a run will do and roughly what it costs (``--dry-run`` prints this without running)."""

    dataset: dict[str, Any]
    candidates: list[dict[str, Any]]
    excluded: list[dict[str, str]]
    subsample: dict[str, Any]
    shortlist: int
    offline: bool
    device: str
    estimated_seconds: float
    budget_seconds: float | None
    stages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready plan (what ``--dry-run --format json`` prints)."""
        return dataclasses.asdict(self)
