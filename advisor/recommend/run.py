"""Orchestration of `advisor recommend`: plan, candidates, features, scores, similarity, bench, probes, ranking.

Stages (each cached, so a rerun is fast and adding a candidate computes only that candidate):

1. priors from the catalog (published ImageNet top-1, size);
2. frozen features on a seeded stratified subsample (`advisor.features`, cached by the features module);
3. transferability scores (`advisor.scores`) and a dataset-similarity probe (source-head confidence/entropy,
   feature statistics), cached in ``cache_dir("probes")``;
4. measured latency/memory (`advisor.bench`, ``reuse=True``: cached per hardware fingerprint); the
   ``--max-latency-ms`` / ``--max-memory-mb`` constraints apply here;
5. a combined predicted ranking with uncertainty (`advisor.recommend.ranking`);
6. cross-validated linear probes (`advisor.probe`) on the shortlist, cached in ``cache_dir("probes")``;
7. the final ranking by probe accuracy, with tie groups, the Pareto front, reasons and strategy advice.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advisor.errors import AdvisorError, UsageError
from advisor.recommend.candidates import Candidate, Constraints, Exclusion, select_candidates
from advisor.recommend.finetune_check import _finetune_check
from advisor.recommend.results import CandidateResult, RecommendResults
from advisor.versions import library_versions

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
DEFAULT_SHORTLIST = 5
CACHE_VERSION = 1

# Cost model for --budget and --dry-run (rough, documented): seconds per subsample item for feature extraction
# = 2 * gmacs * 1e9 / FLOPS[device kind] + DECODE_S; plus fixed costs per candidate.
EFFECTIVE_FLOPS = {"cpu": 2.0e10, "cuda": 2.0e12, "mps": 2.0e11}
DECODE_S = 0.002
DEFAULT_GMACS = 2.0  # when the catalog does not know
FIXED_S = {"load": 3.0, "scores": 3.0, "bench": 8.0, "probe": 10.0}

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class RunConfig:
    """Every option of a recommend run (serialised into the results, so any figure can be traced).

    Units are in the names. ``out``: run directory; "auto" = ``./advisor-runs/<timestamp>-<dataset>``;
    None = do not write files.
    """

    data: str
    modality: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    split: str | None = None
    group_column: str | None = None  # table/manifest column with each sample's group: group-aware folds
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
    finetune_top: int = (
        0  # fine-tune the K best candidates to check the probe ranking and the strategy advice
    )
    finetune_epochs: int = 3
    finetune_unfreeze: str | None = (
        None  # None: the advice's setting (last-2 when the advice is a linear probe)
    )
    finetune_budget_minutes: float | None = None  # per model; None: no cap beyond the epochs
    out: str | None = "auto"
    dry_run: bool = False
    progress: bool = False

    def __post_init__(self) -> None:
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
        from advisor.scores.api import resolve_metrics

        resolve_metrics(list(self.scores))  # an unknown name is a usage error listing the valid ones

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["models"] = list(self.models)
        d["scores"] = list(self.scores)
        return d

    def constraints(self, *, offline: bool | None = None, max_candidates: int | None = None) -> Constraints:
        return Constraints(
            device=self.device,
            max_latency_ms=self.max_latency_ms,
            latency_batch_size=self.latency_batch_size,
            max_params=self.max_params,
            max_memory_mb=self.max_memory_mb,
            license=self.license,
            models=tuple(self.models),
            offline=self.offline if offline is None else offline,
            max_candidates=max_candidates if max_candidates is not None else self.max_candidates,
        )


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
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------- planning
def _device_kind(device: str) -> str:
    if device == "auto":
        try:
            from advisor.models.device import resolve_device

            return resolve_device("auto").type
        except Exception:
            return "cpu"
    return device.split(":")[0]


def estimate_candidate_seconds(c: Candidate, n_samples: int, device_kind: str, bench: bool) -> float:
    """Rough wall time to evaluate one candidate on `n_samples` items (documented cost model, not a promise)."""
    gmacs = (c.entry.gmacs if c.entry and c.entry.gmacs else None) or DEFAULT_GMACS
    per_item = 2 * gmacs * 1e9 / EFFECTIVE_FLOPS.get(device_kind, EFFECTIVE_FLOPS["cpu"]) + DECODE_S
    fixed = FIXED_S["load"] + FIXED_S["scores"] + (FIXED_S["bench"] if bench else 0.0)
    return n_samples * per_item + fixed


def _subsample_size(n_total: int, n_classes: int, max_per_class: int | None, max_samples: int | None) -> int:
    cap = n_total
    if max_per_class:
        cap = min(cap, max_per_class * max(n_classes, 1))
    if max_samples:
        cap = min(cap, max_samples)
    return cap


def make_plan(cfg: RunConfig, dataset, *, offline: bool, catalog=None) -> tuple[Plan, list[Candidate], dict]:
    """Choose candidates, the subsample and the shortlist size under `cfg` (and its budget).

    Returns:
        (plan, candidates, sampling kwargs for `stratified_sample`).
    """
    kind = _device_kind(cfg.device)
    n_classes = len(dataset.classes)
    n_total = len(dataset.samples)
    max_samples = cfg.max_samples if cfg.max_samples is not None else DEFAULT_MAX_SAMPLES
    max_per_class = cfg.max_per_class
    cands, excluded = select_candidates(dataset.modality, cfg.constraints(offline=offline), catalog)
    budget_s = cfg.budget_minutes * 60 if cfg.budget_minutes else None

    def total(cs: Sequence[Candidate], n: int) -> float:
        short = min(len(cs), cfg.shortlist or DEFAULT_SHORTLIST)
        return sum(estimate_candidate_seconds(c, n, kind, cfg.bench) for c in cs) + short * FIXED_S["probe"]

    n_sub = _subsample_size(n_total, n_classes, max_per_class, max_samples)
    if budget_s is not None:
        # shrink the subsample first (down to 20 per class), then the candidate list (down to 2)
        while total(cands, n_sub) > budget_s and n_sub > 20 * n_classes:
            max_samples = max(20 * n_classes, int(n_sub * 0.7))
            n_sub = _subsample_size(n_total, n_classes, max_per_class, max_samples)
        while total(cands, n_sub) > budget_s and len(cands) > 2 and not cfg.models:
            dropped = cands.pop()
            excluded.append(Exclusion(dropped.model_id, f"over the --budget of {cfg.budget_minutes:g} min"))
    shortlist = min(len(cands), cfg.shortlist or DEFAULT_SHORTLIST)
    warnings = []
    if not cands:
        warnings.append("no candidate fits the constraints; the run would stop here")
    if budget_s is not None and total(cands, n_sub) > budget_s:
        warnings.append(
            f"the smallest plan (subsample {n_sub}, {len(cands)} candidates) is estimated at "
            f"{total(cands, n_sub) / 60:.1f} min, over the {cfg.budget_minutes:g} min budget"
        )
    plan = Plan(
        dataset={
            "root": str(dataset.root),
            "modality": dataset.modality,
            "n_samples": n_total,
            "n_classes": n_classes,
            "fingerprint": dataset.fingerprint,
        },
        candidates=[
            {
                "model_id": c.model_id,
                "origin": c.origin,
                "n_params": c.n_params,
                "available_offline": c.available,
                "estimated_seconds": round(estimate_candidate_seconds(c, n_sub, kind, cfg.bench), 1),
            }
            for c in cands
        ],
        excluded=[{"model_id": x.model_id, "reason": x.reason} for x in excluded],
        subsample={"n": n_sub, "max_per_class": max_per_class, "max_samples": max_samples, "seed": cfg.seed},
        shortlist=shortlist,
        offline=offline,
        device=kind,
        estimated_seconds=round(total(cands, n_sub), 1),
        budget_seconds=budget_s,
        stages=[
            "priors (catalog)",
            f"features on a stratified subsample of {n_sub}",
            f"scores: {', '.join(cfg.scores)} + dataset similarity",
            f"latency/memory at batch {cfg.latency_batch_size}" if cfg.bench else "no latency measurement",
            f"linear probes ({cfg.folds}-fold CV) on the top {shortlist}"
            + (" and on no-pretraining floors" if cfg.baselines else ""),
            "final ranking, Pareto front, strategy advice",
        ],
        warnings=warnings,
    )
    return plan, cands, {"max_per_class": max_per_class, "max_samples": max_samples, "seed": cfg.seed}


# ----------------------------------------------------------------------------------------------- signals
def domain_signals(
    features: np.ndarray, logits: np.ndarray | None, logits_kind: str | None = None
) -> dict[str, float | None]:
    """Dataset-similarity signals: how familiar the data looks to the model.

    - ``source_confidence``: mean max softmax probability of the source head (high = looks like pretraining data);
    - ``source_entropy_norm``: mean softmax entropy / log(Z) in [0, 1] (1 = uniform = unfamiliar); this is the
      domain gap the strategy advice uses;
    - ``feature_effective_rank``: exp(entropy of the normalised covariance spectrum) / D: how many feature
      directions the data actually uses (low = features collapse on this data).

    Source outputs that already are probabilities (``logits_kind="probabilities"``, or by the value rule of
    `advisor.scores.prepare.looks_like_probabilities`) are renormalised, not softmaxed a second time.
    """
    from advisor.scores.prepare import looks_like_probabilities

    out: dict[str, float | None] = {"source_confidence": None, "source_entropy_norm": None}
    if logits is not None and logits.ndim == 2 and logits.shape[1] > 1:
        z = logits.astype(np.float64)
        if logits_kind == "probabilities" or (logits_kind is None and looks_like_probabilities(z)):
            p = np.clip(z, 0.0, None)
            rs = p.sum(1, keepdims=True)
            p = np.where(rs > 0, p / np.where(rs > 0, rs, 1.0), 1.0 / z.shape[1])
        else:
            z = z - z.max(1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(1, keepdims=True)
        ent = -(p * np.log(np.clip(p, 1e-30, None))).sum(1) / math.log(z.shape[1])
        out["source_confidence"] = float(p.max(1).mean())
        out["source_entropy_norm"] = float(ent.mean())
    x = features.astype(np.float64)
    x = x - x.mean(0)
    try:
        s = np.linalg.svd(x[: min(len(x), 2000)], compute_uv=False) ** 2
        s = s[s > 1e-12]
        p = s / s.sum()
        out["feature_effective_rank"] = float(np.exp(-(p * np.log(p)).sum()) / features.shape[1])
    except np.linalg.LinAlgError:
        out["feature_effective_rank"] = None
    return out


def _score_dict(r: Any) -> dict[str, Any]:
    d = dataclasses.asdict(r) if dataclasses.is_dataclass(r) else dict(r)
    if d.get("ci") is not None:
        d["ci"] = list(d["ci"])
    return d


# ----------------------------------------------------------------------------------------------- caching
def _cache_path(kind: str, key: str) -> Path:
    from advisor.paths import cache_dir

    return cache_dir("probes") / f"{kind}-{key}.json"


def _cache_get(kind: str, key: str) -> dict | None:
    import json

    p = _cache_path(kind, key)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a torn/corrupt entry is recomputed


def _cache_put(kind: str, key: str, value: dict) -> None:
    from advisor.io import atomic_write_json

    atomic_write_json(_cache_path(kind, key), value)


def feature_key(fs: Any, model_id: str, dataset_fp: str, ids_hash: str) -> str:
    """The features' content key: the features cache key when the features module gives one, else our own."""
    from advisor.io import stable_hash

    meta = getattr(fs, "meta", None) or {}
    k = meta.get("cache_key") or meta.get("key")
    return str(k) if k else stable_hash({"model": model_id, "data": dataset_fp, "ids": ids_hash})


# ----------------------------------------------------------------------------------------------- environment
def _hardware() -> dict[str, Any]:
    try:
        from advisor.bench.hardware import hardware_fingerprint

        return dict(hardware_fingerprint())
    except Exception as e:  # the bench module is optional for the ranking itself
        import os

        return {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "note": str(e)[:200],
        }


def _bench_config(cfg: RunConfig) -> Any:
    from advisor.bench import BenchConfig

    return BenchConfig(
        device=cfg.device,
        batch_sizes=(cfg.latency_batch_size,),
        min_time=cfg.bench_min_time_s,
        max_time=max(cfg.bench_max_time_s, cfg.bench_min_time_s),
        threads=cfg.bench_threads,
    )


def _bench_summary(measured: Any, cfg: RunConfig) -> dict[str, Any]:
    """The ``bench`` field of a candidate from a `reliability.Measured` (figure, reliability, provenance).

    ``peak_memory_mb`` = fp32 weights + the peak working memory of the timed forward passes (GPU: peak allocated
    over what was allocated before; CPU: peak RSS growth), in MiB. ``reliable`` False (with
    ``unreliable_reason``) when the spread was large or the machine busy even after re-measurement.
    """
    res = measured.record
    rec = next(
        (r for r in res.get("records") or [] if r.get("requested_batch_size") == cfg.latency_batch_size), None
    )
    lat = (rec.get("latency") or {}) if rec else {}
    mem = (rec.get("memory") or {}) if rec else {}
    weights = res.get("weights_memory_mb") or {}
    w_mb = weights.get("fp32") if isinstance(weights, dict) else None
    if w_mb is None and isinstance(weights, dict) and weights:
        w_mb = next(iter(weights.values()))
    work = mem.get("gpu_peak_allocated_mb")
    if work is None:
        work = mem.get("cpu_rss_delta_mb")
    peak = None if w_mb is None and work is None else float(w_mb or 0.0) + float(work or 0.0)
    gm = res.get("gmacs")
    rel = measured.reliability
    return {
        "batch_size": rec.get("batch_size") if rec and rec.get("batch_size") else cfg.latency_batch_size,
        "latency_ms_p50": lat.get("p50_ms"),
        "latency_ms_p90": lat.get("p90_ms"),
        "latency_ms_iqr": lat.get("iqr_ms"),
        "throughput_items_s": rec.get("throughput_items_per_s") if rec else None,
        "peak_memory_mb": peak,
        "weights_memory_mb": w_mb,
        "device": res.get("device"),
        "device_class": res.get("device_class"),
        "status": rec.get("status") if rec else "missing",
        "pretrained": res.get("pretrained"),
        "gmacs": gm.get("gmacs") if isinstance(gm, dict) else None,
        "cached": bool(measured.from_cache),
        "reliable": bool(rel.get("reliable")),
        "unreliable_reason": "; ".join(rel.get("reasons") or []) or None,
        "spread_rel": rel.get("spread_rel"),
        "loadavg_1m": rel.get("loadavg_1m"),
        "usable_cpus": rel.get("usable_cpus"),
        "threads": rel.get("threads"),
        "threads_requested": measured.threads_requested,
        "remeasure_rounds": measured.rounds,
        "warnings": list((rec or {}).get("warnings") or []) + list(res.get("warnings") or []),
    }


def _bench(
    model_ids: Sequence[str],
    cfg: RunConfig,
    *,
    on_error: Callable[[str, BaseException], None] | None = None,
    say: Callable[[str], None] | None = None,
    **hooks: Any,
) -> dict[str, dict[str, Any]]:
    """Latency/memory of every candidate at the stated batch size via advisor.bench (random weights).

    Reuses a stored figure only when it was reliable and measured with the same settings (threads, batch size,
    device, hardware), unless ``cfg.rebench``; re-measures in interleaved rounds when a figure is unreliable
    (`advisor.bench.reliability.measure_candidates`). ``hooks`` (bench_fn, load_fn, store_path) are for tests.
    """
    from advisor.bench.reliability import measure_candidates

    got = measure_candidates(
        list(model_ids), _bench_config(cfg), rebench=cfg.rebench, on_error=on_error, say=say, **hooks
    )
    return {m: _bench_summary(x, cfg) for m, x in got.items()}


def apply_resource_limits(cands: Sequence[CandidateResult], cfg: RunConfig, notes: list[str]) -> None:
    """Exclude candidates over ``--max-latency-ms`` / ``--max-memory-mb`` (status "excluded", reason set).

    A reliable latency is compared by its p50; an unreliable one by the upper end of its interval (p90), and a
    note says so. Memory (weights + peak working memory) does not depend on load; a flagged run is noted.
    """
    upper: list[str] = []
    for cr in cands:
        b = cr.bench or {}
        lat, mem = cr.latency_ms, cr.memory_mb
        shaky = b.get("reliable") is False
        why = None
        if cfg.max_latency_ms is not None:
            if lat is None:
                why = "latency not measured"
            else:
                used, what = lat, "p50"
                if shaky:
                    used, what = (b.get("latency_ms_p90") or lat), "p90 (figure unreliable)"
                    upper.append(f"{cr.model_id} {used:.1f} ms")
                if used > cfg.max_latency_ms:
                    why = f"{used:.1f} ms {what} > --max-latency-ms {cfg.max_latency_ms:g}"
        if why is None and cfg.max_memory_mb is not None and (mem is None or mem > cfg.max_memory_mb):
            why = (
                "memory not measured"
                if mem is None
                else f"{mem:.0f} MB > --max-memory-mb {cfg.max_memory_mb:g}"
                + (" (from a run flagged unreliable for latency)" if shaky else "")
            )
        if why:
            cr.status = "excluded"
            cr.reasons = [why]
    if upper:
        notes.append(
            "--max-latency-ms used the upper end of the interval (p90) for unreliable latency figures: "
            + ", ".join(upper)
        )


# ----------------------------------------------------------------------------------------------- reasons
def _license_text(c: CandidateResult) -> str:
    return c.license or (
        c.license_class if c.license_class and c.license_class != "unknown" else "license unknown"
    )


def _lat_text(c: CandidateResult, device_word: str) -> str:
    if c.latency_ms is None:
        return "latency not measured"
    bs = (c.bench or {}).get("batch_size")
    from advisor.report.render import fmt_ms

    shaky = " (unreliable: " + str((c.bench or {}).get("unreliable_reason")) + ")" if _unreliable(c) else ""
    return f"{fmt_ms(c.latency_ms)} ms p50 at batch {bs} on this {device_word}{shaky}"


def _acc_text(c: CandidateResult) -> str:
    p = c.probe or {}
    lo, hi = p.get("accuracy_ci") or (p.get("accuracy"), p.get("accuracy"))
    return f"{100 * p['accuracy']:.1f} ± {100 * (hi - lo) / 2:.1f} %"


def _unreliable(c: CandidateResult) -> bool:
    return (c.bench or {}).get("reliable") is False


def clearly_faster(a: CandidateResult, b: CandidateResult) -> bool:
    """``a`` is faster than ``b`` beyond the measurement spread (IQR bands apart), and both figures are reliable."""
    if a.latency_ms is None or b.latency_ms is None or _unreliable(a) or _unreliable(b):
        return False
    ia = float((a.bench or {}).get("latency_ms_iqr") or 0.0)
    ib = float((b.bench or {}).get("latency_ms_iqr") or 0.0)
    return a.latency_ms + ia / 2 < b.latency_ms - ib / 2


def build_reasons(ranked: list[CandidateResult], device_word: str) -> None:
    """One reason line per pick (the first entry of ``reasons``), plus supporting lines."""
    if not ranked:
        return
    best = ranked[0]
    fastest_front = min(
        (c for c in ranked if c.pareto and c.latency_ms is not None), key=lambda c: c.latency_ms, default=None
    )
    # "fastest" compares latencies: only when every figure on the front is reliable.
    front_reliable = not any(_unreliable(c) for c in ranked if c.pareto)
    for c in ranked:
        lat, lic = _lat_text(c, device_word), _license_text(c)
        if c is best:
            head = f"best probe accuracy {_acc_text(c)}, {lat}, {lic}"
        elif c.tie_group == best.tie_group:
            faster = clearly_faster(c, best)
            head = (
                f"statistically tied with #1 ({_acc_text(c)}){' and faster' if faster else ''}, {lat}, {lic}"
            )
        elif c is fastest_front and front_reliable:
            head = f"fastest on the accuracy/latency Pareto front: {_acc_text(c)}, {lat}, {lic}"
        elif c.pareto:
            head = f"on the accuracy/latency Pareto front: {_acc_text(c)}, {lat}, {lic}"
        else:
            head = f"probe accuracy {_acc_text(c)}, {lat}, {lic}"
        extra = []
        if c.predicted.get("rank") is not None:
            extra.append(f"predicted rank {c.predicted['rank']} (score {c.predicted['score']:+.2f})")
        if c.n_params is not None:
            extra.append(f"{c.n_params / 1e6:.1f}M params")
        c.reasons = [head] + extra


# ----------------------------------------------------------------------------------------------- the run
def _default_out(dataset_name: str) -> Path:
    ts = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in dataset_name)[:60] or "dataset"
    return Path("advisor-runs") / f"{ts}-{safe}"


def _entry_fields(c: Candidate) -> dict[str, Any]:
    e = c.entry
    if e is None:
        return {"source": c.model_id.split(":", 1)[0] if ":" in c.model_id else "local"}
    return {
        "source": e.source,
        "family": e.family,
        "n_params": e.n_params,
        "gmacs": e.gmacs,
        "license": e.license,
        "license_class": e.license_class,
        "pretrain_data": e.pretrain_data,
        "imagenet_top1": e.imagenet_top1,
        "feature_dim": e.feature_dim,
    }


SPLIT_EVAL_ORDER = ("val", "test")  # the given split scored on, in order of preference


def _group_of(smp: Any, cfg: RunConfig, rx: Any) -> str | None:
    if cfg.group_column is not None:
        return smp.group
    name = smp.path.name if smp.path is not None else smp.id
    m = rx.search(name)
    if m is None:
        return None
    return m.group(1) if m.groups() else m.group(0)


def evaluation_protocol(samples: list, cfg: RunConfig, notes: list[str]) -> tuple[list, dict[str, Any]]:
    """How the probes are evaluated, honouring the user's setup.

    - a given split (samples from ``train`` and ``val``/``test``): fit on train, score on val (else test);
      samples of any other split are left out;
    - ``--group-column`` / ``--group-pattern``: group K-fold (no group on both sides);
    - otherwise stratified K-fold CV on the subsample.

    Returns the samples to use and ``{"protocol", "eval_split", "groups": {id: group}, "eval_ids": [...]}``.
    """
    import re

    if cfg.group_column is not None and cfg.group_pattern is not None:
        raise UsageError("give either --group-column or --group-pattern, not both")
    groups: dict[str, str] = {}
    if cfg.group_column is not None or cfg.group_pattern is not None:
        try:
            rx = re.compile(cfg.group_pattern) if cfg.group_pattern is not None else None
        except re.error as e:
            raise UsageError(f"--group-pattern {cfg.group_pattern!r} is not a valid regex: {e}") from None
        missing = []
        for smp in samples:
            g = _group_of(smp, cfg, rx)
            if g is None:
                missing.append(smp)
            else:
                groups[smp.id] = g
        what = (
            f"--group-column {cfg.group_column}"
            if cfg.group_column
            else f"--group-pattern {cfg.group_pattern}"
        )
        if not groups:
            raise UsageError(
                f"{cfg.data}: {what} gave no group for any sample",
                hint="--group-column needs a table or manifest with that column; for folders use --group-pattern",
            )
        if missing:
            notes.append(
                f"{len(missing)} sample(s) without a group ({what}) were left out, e.g. {missing[0].id}"
            )
            samples = [smp for smp in samples if smp.id in groups]
    splits = {smp.split for smp in samples}
    eval_split = next((sp for sp in SPLIT_EVAL_ORDER if sp in splits), None) if "train" in splits else None
    proto: dict[str, Any] = {"protocol": "cv", "eval_split": None, "groups": groups, "eval_ids": []}
    if eval_split is not None:
        other = [smp for smp in samples if smp.split not in ("train", eval_split)]
        if other:
            notes.append(
                f"given split: fitted on train, scored on {eval_split}; {len(other)} sample(s) of other splits "
                "left out"
            )
        else:
            notes.append(f"given split: probes fitted on train and scored on {eval_split}")
        samples = [smp for smp in samples if smp.split in ("train", eval_split)]
        proto.update(protocol="given-split", eval_split=eval_split)
        proto["eval_ids"] = [smp.id for smp in samples if smp.split == eval_split]
    elif groups:
        proto["protocol"] = "group-cv"
        notes.append(f"group-aware folds: {len(set(groups.values()))} groups, none on both sides of a fold")
    return samples, proto


def _probe_inputs(ids: Sequence[str], protocol: dict[str, Any]) -> dict[str, Any]:
    """linear_probe keyword arguments for the rows `ids` under `protocol`."""
    out: dict[str, Any] = {}
    if protocol["protocol"] == "given-split":
        ev = set(protocol["eval_ids"])
        out["test_mask"] = np.array([i in ev for i in ids], dtype=bool)
    if protocol["groups"]:
        out["groups"] = [protocol["groups"].get(i, i) for i in ids]
    return out


def _probe_inputs_key(kw: dict[str, Any]) -> Any:
    from advisor.io import stable_hash

    return stable_hash(
        {
            "mask": None if "test_mask" not in kw else [bool(v) for v in kw["test_mask"]],
            "groups": kw.get("groups"),
        }
    )


MIN_PER_CLASS = 2  # a class needs a sample on each side of a fold to be evaluated


def _drop_small_classes(
    samples: list, dataset: Any, sampling: dict, notes: list[str], say: ProgressFn
) -> list:
    """Drop classes with fewer than MIN_PER_CLASS labelled samples in the subsample (named in a note).

    Raises UsageError, before any model work, when fewer than 2 classes remain.
    """
    counts: dict[str, int] = {}
    for smp in samples:
        if smp.label is not None:
            counts[smp.label] = counts.get(smp.label, 0) + 1
    small = sorted(c for c, n in counts.items() if n < MIN_PER_CLASS)
    if not small:
        return samples
    total = {c: 0 for c in small}
    for smp in dataset.samples:
        if smp.label in total:
            total[smp.label] += 1
    capped = [c for c in small if total[c] >= MIN_PER_CLASS]
    shown = ", ".join(repr(c) for c in small[:10]) + (
        f" and {len(small) - 10} more" if len(small) > 10 else ""
    )
    why = f"fewer than {MIN_PER_CLASS} samples in the subsample"
    if capped:
        why += (
            f" ({len(capped)} of them because --max-samples {sampling.get('max_samples')} caps "
            f"{len(counts)} classes; raise it to at least {MIN_PER_CLASS * len(counts)} to keep them)"
        )
    kept = len(counts) - len(small)
    if kept < 2:
        raise UsageError(
            f"{dataset.root}: nothing can be ranked: {len(small)} of {len(counts)} classes have {why}",
            hint=f"each class needs at least {MIN_PER_CLASS} labelled samples; add samples or merge classes",
        )
    msg = f"dropped {len(small)} class(es) with {why}: {shown}; ranking the other {kept}"
    notes.append(msg)
    say(msg)
    drop = set(small)
    return [smp for smp in samples if smp.label not in drop]


def recommend(data: str | Path | None = None, *, progress_fn: ProgressFn | None = None, **options: Any):
    """Rank pretrained models for a labelled dataset: the library behind `advisor recommend`.

    Args:
        data: dataset path (image folder, CSV/JSONL/manifest, audio folder); with ``demo=True`` it may be None.
        progress_fn: optional callback receiving one-line progress messages.
        **options: the fields of `RunConfig` (device, max_latency_ms, latency_batch_size, max_params,
            max_memory_mb, license, models, offline, budget_minutes, max_candidates, shortlist, max_per_class,
            max_samples, scores, folds, seed, bench, combine, batch_size, out, dry_run, progress), and
            ``demo=True`` for the bundled Fashion-MNIST sample (offline, packaged models, CPU by default).

    Returns:
        `RecommendResults` (or a `Plan` when ``dry_run=True``). With ``out`` set (default "auto") the run directory
        is written (results.json, results.csv, report.md, report.html).

    Raises:
        DatasetError, UsageError: bad data or options. Candidates that fail to load are recorded, not raised.
    """
    if options.pop("demo", False):
        from advisor.demo import demo_dataset_path

        data = demo_dataset_path()
        options.setdefault("offline", True)
        if options.get("device", "auto") == "auto":
            options["device"] = "cpu"
    if data is None:
        raise UsageError("no dataset given", hint="pass a dataset path, or --demo for the bundled sample")
    for k in ("models", "scores"):
        if k in options and options[k] is not None and not isinstance(options[k], tuple):
            v = options[k]
            options[k] = tuple(v.split(",")) if isinstance(v, str) else tuple(v)
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = set(options) - known
    if unknown:
        raise UsageError(f"unknown recommend option(s): {', '.join(sorted(unknown))}")
    cfg = RunConfig(data=str(data), **{k: v for k, v in options.items() if v is not None or k == "out"})
    return run(cfg, progress_fn=progress_fn)


def run(cfg: RunConfig, *, progress_fn: ProgressFn | None = None, catalog=None):
    """Execute a recommend run for `cfg` (see `recommend`)."""
    import advisor
    from advisor.data import load_dataset, stratified_sample
    from advisor.io import stable_hash

    say = progress_fn or (lambda msg: None)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    notes: list[str] = []

    t0 = time.perf_counter()
    dataset = load_dataset(
        cfg.data,
        modality=cfg.modality,
        text_column=cfg.text_column,
        label_column=cfg.label_column,
        split=cfg.split,
        group_column=cfg.group_column,
    )
    if len(dataset.classes) < 2:
        raise UsageError(f"{cfg.data}: recommend needs labelled data with at least 2 classes")
    offline = cfg.offline
    if not offline:
        try:
            from advisor.models.hub import is_offline

            offline = is_offline(None)
            if offline:
                notes.append("no network: only locally available weights were considered (as with --offline)")
        except Exception:
            pass
    plan, cands, sampling = make_plan(cfg, dataset, offline=offline, catalog=catalog)
    timings["plan"] = time.perf_counter() - t0
    if cfg.dry_run:
        return plan
    if not cands:
        raise UsageError(
            f"no candidate model fits the constraints for this {dataset.modality} dataset",
            hint="relax --max-params/--license/--offline, or name models with --models"
            + (
                f" (excluded: {plan.excluded[0]['model_id']}: {plan.excluded[0]['reason']})"
                if plan.excluded
                else ""
            ),
        )
    samples = stratified_sample(dataset, **sampling)
    samples = _drop_small_classes(samples, dataset, sampling, notes, say)
    samples, protocol = evaluation_protocol(samples, cfg, notes)
    ids_hash = stable_hash([s.id for s in samples])
    say(f"{len(cands)} candidates; subsample {len(samples)} of {len(dataset.samples)} samples")

    profile = None
    try:
        from advisor.data import profile_dataset

        profile = profile_dataset(dataset).to_dict()
    except Exception as e:  # the profile is for the report only
        notes.append(f"dataset profile unavailable: {e}")

    results: dict[str, CandidateResult] = {}
    feats: dict[str, Any] = {}
    fkeys: dict[str, str] = {}
    for x in plan.excluded:
        results[x["model_id"]] = CandidateResult(
            model_id=x["model_id"], status="excluded", reasons=[x["reason"]]
        )

    # ---- features, scores, similarity -------------------------------------------------------------------------
    from advisor.features import extract_features

    t0 = time.perf_counter()
    for i, c in enumerate(cands, 1):
        cr = CandidateResult(model_id=c.model_id, **_entry_fields(c))
        results[c.model_id] = cr
        say(f"[{i}/{len(cands)}] features: {c.model_id}")
        t1 = time.perf_counter()
        try:
            fs = extract_features(
                dataset,
                c.model_id,
                samples=samples,
                device=cfg.device,
                batch_size=cfg.batch_size,
                progress=cfg.progress,
                offline=offline,
            )
        except AdvisorError as e:
            cr.status, cr.error = "failed", str(e)
            notes.append(f"{c.model_id} skipped: {e.message}")
            say(f"  skipped {c.model_id}: {e.message}")
            continue
        except Exception as e:  # a broken model must not sink the run
            cr.status, cr.error = "failed", f"{type(e).__name__}: {e}"[:500]
            notes.append(f"{c.model_id} skipped: unexpected {type(e).__name__}: {str(e)[:200]}")
            continue
        cr.timings["features"] = time.perf_counter() - t1
        cr.cached["features"] = bool((getattr(fs, "meta", None) or {}).get("cache_hit"))
        cr.stage = "scores"
        cr.feature_dim = int(fs.features.shape[1])
        feats[c.model_id] = fs
        fk = feature_key(fs, c.model_id, dataset.fingerprint, ids_hash)
        fkeys[c.model_id] = fk
        # "sv": score semantics (2: no second softmax of probability outputs, degenerate-score flags)
        skey = stable_hash(
            {"v": CACHE_VERSION, "sv": 2, "f": fk, "scores": list(cfg.scores), "seed": cfg.seed}
        )
        cached = _cache_get("scores", skey)
        cr.cached["scores"] = cached is not None
        if cached is None:
            t1 = time.perf_counter()
            lkind = (getattr(fs, "meta", None) or {}).get("logits_kind")
            cached = {"scores": {}, "domain": domain_signals(np.asarray(fs.features), _logits(fs), lkind)}
            try:
                from advisor.scores import compute_scores

                is_p = lkind == "probabilities"
                sc = compute_scores(
                    fs.features,
                    fs.labels,
                    logits=None if is_p else _logits(fs),
                    probs=_logits(fs) if is_p else None,
                    metrics=list(cfg.scores),
                    seed=cfg.seed,
                )
                cached["scores"] = {k: _score_dict(v) for k, v in sc.items()}
                failed = False
            except Exception as e:  # scores inform the shortlist; a failure must not sink the run
                msg = e.message if isinstance(e, AdvisorError) else f"{type(e).__name__}: {str(e)[:200]}"
                notes.append(f"{c.model_id}: scores failed: {msg}")
                failed = True
            cached["seconds"] = time.perf_counter() - t1
            if not failed:  # a failure is retried on the next run, not cached
                _cache_put("scores", skey, cached)
        cr.scores = cached["scores"]
        cr.domain = cached["domain"]
        cr.timings["scores"] = cached.get("seconds", 0.0)
    timings["features_scores"] = time.perf_counter() - t0

    # ---- latency / memory ---------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    alive = [m for m in feats]
    if cfg.bench:

        def bench_failed(m: str, e: BaseException) -> None:
            msg = e.message if isinstance(e, AdvisorError) else f"{type(e).__name__}: {str(e)[:200]}"
            notes.append(f"{m}: latency not measured ({msg})")

        say(f"bench: {len(alive)} candidate(s) at batch {cfg.latency_batch_size}")
        for m, b in _bench(alive, cfg, on_error=bench_failed, say=say).items():
            results[m].bench = b
            results[m].cached["bench"] = bool(b.get("cached"))
        flagged = [m for m in alive if (results[m].bench or {}).get("reliable") is False]
        if flagged:
            notes.append(
                "latency unreliable (marked ?) for "
                + ", ".join(f"{m} ({results[m].bench.get('unreliable_reason')})" for m in flagged)
                + ": no 'faster' claim rests on these figures; rerun on an idle machine, or with --threads 1 "
                "--rebench"
            )
    apply_resource_limits([results[m] for m in alive], cfg, notes)
    alive = [m for m in alive if results[m].status != "excluded"]
    timings["bench"] = time.perf_counter() - t0

    # ---- predicted ranking -------------------------------------------------------------------------------------
    from advisor.recommend.ranking import (
        PairedCandidate,
        combine,
        paired_tie_groups,
        pareto_front,
        weights_record,
    )

    signals: dict[str, dict[str, float | None]] = {}
    hib: dict[str, bool] = {}
    for m in alive:
        cr = results[m]
        for name, s in cr.scores.items():
            if s.get("applicable", True) and s.get("value") is not None:
                signals.setdefault(name, {})[m] = float(s["value"])
                hib[name] = bool(s.get("higher_is_better", True))
        if cr.domain.get("source_confidence") is not None:
            signals.setdefault("domain_confidence", {})[m] = cr.domain["source_confidence"]
        if cr.imagenet_top1 is not None and dataset.modality == "image":
            signals.setdefault("prior_imagenet_top1", {})[m] = cr.imagenet_top1
        if cr.n_params:
            signals.setdefault("prior_log_params", {})[m] = math.log10(cr.n_params)
    preds = combine(signals, hib, method=cfg.combine)
    for m in alive:
        p = preds.get(m)
        results[m].predicted = (
            p.to_dict() if p else {"score": None, "rank": None, "uncertainty": None, "signals": {}}
        )

    # ---- probes on the shortlist --------------------------------------------------------------------------------
    from advisor.probe import PROBE_VERSION, ProbeResult, linear_probe

    t0 = time.perf_counter()
    order = sorted(alive, key=lambda m: (results[m].predicted.get("rank") or 10**9, m))
    short = order[: min(len(order), cfg.shortlist or DEFAULT_SHORTLIST)]
    probe_device = "cpu" if _device_kind(cfg.device) == "cpu" else cfg.device
    oof: dict[str, tuple[list[str], np.ndarray, list[int]]] = {}  # model -> (sample ids, labels, predictions)
    for i, m in enumerate(short, 1):
        say(f"[{i}/{len(short)}] linear probe: {m}")
        fs = feats[m]
        pkw = _probe_inputs(list(fs.ids), protocol)
        pkey = stable_hash(
            {
                "v": PROBE_VERSION,
                "c": CACHE_VERSION,
                "f": fkeys[m],
                "folds": cfg.folds,
                "seed": cfg.seed,
                "protocol": _probe_inputs_key(pkw),
            }
        )
        cached = _cache_get("probe", pkey)
        results[m].cached["probe"] = cached is not None
        if cached is None:
            try:
                pr = linear_probe(
                    fs.features, fs.labels, folds=cfg.folds, seed=cfg.seed, device=probe_device, **pkw
                )
            except Exception as e:
                msg = e.message if isinstance(e, AdvisorError) else f"{type(e).__name__}: {str(e)[:200]}"
                results[m].error = f"probe failed: {msg}"
                notes.append(f"{m}: probe failed: {msg}")
                continue
            cached = pr.to_dict(include_predictions=True)  # the paired tie test needs the predictions
            _cache_put("probe", pkey, cached)
        pr = ProbeResult.from_dict(cached)
        if len(pr.oof_pred) == int((np.asarray(fs.labels) >= 0).sum()):
            # the probe drops unlabelled rows and keeps the order: align predictions with their sample ids
            lab = np.asarray(fs.labels) >= 0
            oof[m] = ([str(fs.ids[j]) for j in np.flatnonzero(lab)], np.asarray(fs.labels)[lab], pr.oof_pred)
        results[m].probe = pr.to_dict()
        results[m].stage = "probe"
        results[m].timings["probe"] = pr.seconds
    timings["probes"] = time.perf_counter() - t0

    # ---- final ranking ------------------------------------------------------------------------------------------
    probed = [results[m] for m in short if results[m].probe]
    probed.sort(
        key=lambda c: (
            -c.probe["accuracy"],
            c.latency_ms if c.latency_ms is not None else math.inf,
            c.predicted.get("rank") or 10**9,
        )
    )
    # "tied": exact McNemar on the shared out-of-fold predictions vs the leader, Holm over those comparisons
    ties = paired_tie_groups(
        [
            PairedCandidate(
                c.model_id,
                c.probe["accuracy"],
                tuple(c.probe["accuracy_ci"]),
                *(oof[c.model_id] if c.model_id in oof else (None, None, None)),
            )
            for c in probed
        ]
    )
    if any(t.method == "ci-overlap" for t in ties.values()):
        notes.append(
            "tie groups: out-of-fold predictions unavailable for "
            + ", ".join(sorted(m for m, t in ties.items() if t.method == "ci-overlap"))
            + "; those were grouped by overlapping 95 % intervals instead of a paired test"
        )
    front = pareto_front({c.model_id: (c.latency_ms, c.probe["accuracy"]) for c in probed})
    for r, c in enumerate(probed, 1):
        c.rank, c.status = r, "ranked"
        c.tie_group = ties[c.model_id].group
        c.probe["tie_test"] = ties[c.model_id].to_dict()
        c.pareto = c.model_id in front
        if c.probe.get("c_at_grid_edge"):
            notes.append(f"{c.model_id}: " + "; ".join(c.probe.get("notes") or ["probe C at the grid edge"]))
    dev_word = "GPU" if _device_kind(cfg.device) == "cuda" else _device_kind(cfg.device).upper()
    build_reasons(probed, dev_word)
    for m in alive:
        c = results[m]
        if c.rank is None and c.status not in ("failed", "excluded"):
            c.status = "screened"
            c.reasons = [
                f"not shortlisted: predicted rank {c.predicted.get('rank')} (score "
                f"{(c.predicted.get('score') or 0):+.2f}); probes ran on the top {len(short)}"
            ]

    # ---- no-pretraining floors ---------------------------------------------------------------------------------
    floor_headlines: list[str] = []
    if cfg.baselines:
        from advisor.recommend.baselines import BASELINES, baseline_features, baselines_for

        label_of = {name: i for i, name in enumerate(dataset.classes)}
        for bid in baselines_for(dataset.modality):
            say(f"floor: {bid}")
            cr = CandidateResult(model_id=bid, status="baseline", stage="probe", source="baseline")
            results[bid] = cr
            bkey = stable_hash(
                {
                    "v": PROBE_VERSION,
                    "c": CACHE_VERSION,
                    "b": bid,
                    "data": dataset.fingerprint,
                    "ids": ids_hash,
                    "folds": cfg.folds,
                    "seed": cfg.seed,
                    "protocol": _probe_inputs_key(_probe_inputs([smp.id for smp in samples], protocol)),
                }
            )
            cached = _cache_get("baseline", bkey)
            cr.cached["probe"] = cached is not None
            if cached is None:
                try:
                    x, kept = baseline_features(bid, samples)
                    y = np.array([label_of.get(samples[i].label, -1) for i in kept], dtype=np.int64)
                    bkw = _probe_inputs([samples[i].id for i in kept], protocol)
                    cached = linear_probe(
                        x, y, folds=cfg.folds, seed=cfg.seed, device=probe_device, **bkw
                    ).to_dict()
                except AdvisorError as e:
                    cr.error = f"floor not computed: {e.message}"
                    continue
                _cache_put("baseline", bkey, cached)
            cr.probe = cached
            lo, hi = cached["accuracy_ci"]
            cr.reasons = [
                f"no-pretraining floor ({BASELINES[bid][1]}): probe accuracy {100 * cached['accuracy']:.1f} ± "
                f"{100 * (hi - lo) / 2:.1f} %"
            ]
            if probed and cached["accuracy"] >= probed[0].probe["accuracy"]:
                w_acc, w_hi = probed[0].probe["accuracy"], probed[0].probe["accuracy_ci"][1]
                clearly = w_hi < lo
                floor_headlines.append(
                    f"no candidate beats the no-pretraining floor {bid}: {100 * cached['accuracy']:.1f} % vs "
                    f"{100 * w_acc:.1f} % for the best model {probed[0].model_id}"
                    + (" (non-overlapping 95 % intervals)" if clearly else " (overlapping 95 % intervals)")
                    + "; consider the floor's features, or more data, before any pretrained model"
                )
                notes.append(floor_headlines[-1])
            elif probed and probed[0].probe["accuracy_ci"][0] <= hi:
                notes.append(
                    f"the winner {probed[0].model_id} is not significantly better than the {bid} floor "
                    f"({100 * probed[0].probe['accuracy']:.1f} % vs {100 * cached['accuracy']:.1f} %, overlapping "
                    "95 % intervals): on this much data the pretrained features' advantage is not established"
                )

    # ---- strategy advice ----------------------------------------------------------------------------------------
    from advisor.recommend.strategy import advise_strategy

    labels_all = np.asarray(dataset.labels_array())
    counts = np.bincount(labels_all[labels_all >= 0], minlength=len(dataset.classes))
    per_class = float(np.median(counts)) if len(counts) else 0.0
    advice: dict[str, Any] = {}
    if probed:
        w = probed[0]
        gap = w.domain.get("source_entropy_norm")
        advice = advise_strategy(
            samples_per_class=per_class,
            n_classes=len(dataset.classes),
            domain_gap=gap,
            probe_accuracy=w.probe["accuracy"],
            model_id=w.model_id,
            gap_source="mean normalised entropy of the source head on the subsample"
            if gap is not None
            else None,
        )
        advice["next_command"] = (
            f"advisor finetune --data {cfg.data} --model {w.model_id} --unfreeze {advice['unfreeze']}"
        )
    if floor_headlines:
        advice["headline"] = floor_headlines[0]
    if cfg.finetune_top > 0 and probed:
        t_ft = time.perf_counter()
        advice["finetune_check"] = _finetune_check(dataset, probed[: cfg.finetune_top], advice, cfg, say)
        timings["finetune"] = time.perf_counter() - t_ft

    # ---- assemble -----------------------------------------------------------------------------------------------
    ranked_first = probed + [results[m] for m in order if results[m].rank is None]
    rest = [c for c in results.values() if c not in ranked_first]
    status_order = {"baseline": 0, "screened": 1, "failed": 2, "excluded": 3}
    rest.sort(key=lambda c: (status_order.get(c.status, 3), c.model_id))
    name = Path(str(dataset.root)).name
    res = RecommendResults(
        dataset={
            "name": name,
            "root": str(dataset.root),
            "modality": dataset.modality,
            "fingerprint": dataset.fingerprint,
            "layout": getattr(dataset, "layout", None),
            "n_samples": len(dataset.samples),
            "n_classes": len(dataset.classes),
            "classes": list(dataset.classes),
            "class_counts": {c: int(n) for c, n in zip(dataset.classes, counts, strict=False)},
            "n_skipped": len(getattr(dataset, "skipped", []) or []),
            "subsample": {
                "n": len(samples),
                "max_per_class": sampling["max_per_class"],
                "max_samples": sampling["max_samples"],
                "seed": cfg.seed,
                "ids_hash": ids_hash,
            },
            "evaluation": {
                "protocol": protocol["protocol"],
                "eval_split": protocol["eval_split"],
                "n_eval": len(protocol["eval_ids"]) if protocol["eval_split"] else len(samples),
                "group_column": cfg.group_column,
                "group_pattern": cfg.group_pattern,
                "n_groups": len(set(protocol["groups"].values())) if protocol["groups"] else None,
            },
            "profile": profile,
        },
        config=cfg.to_dict() | {"offline_effective": offline},
        candidates=ranked_first + rest,
        hardware=_hardware(),
        versions=library_versions(),
        weights=weights_record(),
        advice=advice,
        timings=timings | {"total": time.perf_counter() - t_start},
        notes=notes,
        created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        advisor_version=advisor.__version__,
    )
    if cfg.out:
        from advisor.report.render import write_run_dir

        out = _default_out(name) if cfg.out == "auto" else Path(cfg.out)
        write_run_dir(res, out)
        say(f"wrote {out}")
    return res


def _logits(fs: Any) -> np.ndarray | None:
    lg = getattr(fs, "logits", None)
    return None if lg is None else np.asarray(lg)
