"""The typed shapes of a candidate's stored figures (probe, bench, scores, predicted) in results.json.

They are ``TypedDict``s: at run time plain JSON objects (so results files, old ones included, load unchanged and
`CandidateResult.to_dict` / ``from_dict`` stay the one (de)serialisation point), for the type checker records
whose keys and value types are declared here. Every key is optional (``total=False``): older files lack some.
"""

from __future__ import annotations

from typing import Any, TypedDict


class ProbeRecord(TypedDict, total=False):
    """`advisor.probe.ProbeResult.to_dict` (fractions in [0, 1]), plus the paired test vs #1 once ranked."""

    accuracy: float
    accuracy_ci: list[float]
    macro_f1: float
    macro_f1_ci: list[float]
    best_l2: float
    best_c: float
    per_class_accuracy: list[float | None]
    seconds: float
    fold_accuracy: list[float]
    cv_accuracy: list[float | None]
    c_grid: list[float]
    folds: int
    n_samples: int
    n_classes: int
    n_features: int
    iterations: int
    device: str
    dtype: str
    chosen_c: list[float]
    c_at_grid_edge: bool
    inner_folds: int
    selection: str
    accuracy_ci_method: str
    notes: list[str]
    protocol: str
    n_eval: int
    tie_test: dict[str, Any]  # `advisor.recommend.ranking.TieResult.to_dict`


class BenchRecord(TypedDict, total=False):
    """`advisor.recommend.measure._bench_summary`: latency (ms per batch), memory (MiB), reliability, provenance."""

    batch_size: int
    latency_ms_p50: float | None
    latency_ms_p90: float | None
    latency_ms_iqr: float | None
    throughput_items_s: float | None
    peak_memory_mb: float | None
    weights_memory_mb: float | None
    device: str | None
    device_class: str | None
    status: str | None
    pretrained: bool | None
    gmacs: float | None
    cached: bool
    reliable: bool
    unreliable_reason: str | None
    spread_rel: float | None
    loadavg_1m: float | None
    usable_cpus: int | None
    threads: int | None
    threads_requested: int | None
    remeasure_rounds: int
    warnings: list[str]
    runtime: str  # the forward's runtime when not eager (`advisor.models.runtimes`)


class ScoreRecord(TypedDict, total=False):
    """One transferability score (`advisor.scores.ScoreResult` as stored)."""

    name: str
    value: float | None
    higher_is_better: bool
    applicable: bool
    reason: str | None
    ci: list[float] | None
    seconds: float | None
    degenerate_reason: str | None


class PredictedRecord(TypedDict, total=False):
    """`advisor.recommend.ranking.Prediction.to_dict`; all None (and no signals) when unscored."""

    score: float | None
    uncertainty: float | None
    rank: int | None
    signals: dict[str, float]
