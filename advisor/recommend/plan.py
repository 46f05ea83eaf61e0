"""Planning of a recommend run: candidates, subsample and shortlist under the budget, and the cost model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from advisor.recommend.candidates import Candidate, Exclusion
from advisor.recommend.config import (
    DECODE_S,
    DEFAULT_GMACS,
    DEFAULT_MAX_SAMPLES,
    DEFAULT_SHORTLIST,
    EFFECTIVE_FLOPS,
    FIXED_S,
    RUNTIME_SPEEDUP,
    Plan,
    RunConfig,
)

if TYPE_CHECKING:
    from advisor.tasks import FeatureTask


def _device_kind(device: str) -> str:
    from advisor.runtime import device_kind

    return device_kind(device)


def estimate_candidate_seconds(
    c: Candidate, n_samples: int, device_kind: str, bench: bool, runtime: str = "eager"
) -> float:
    """Rough wall time to evaluate one candidate on `n_samples` items (documented cost model, not a promise).

    The forward pass is the catalog's GMACs (`DEFAULT_GMACS` when unknown) at the device's effective FLOPS, faster
    by `RUNTIME_SPEEDUP` for a CPU runtime other than eager."""
    gmacs = (c.entry.gmacs if c.entry and c.entry.gmacs else None) or DEFAULT_GMACS
    flops = EFFECTIVE_FLOPS.get(device_kind, EFFECTIVE_FLOPS["cpu"])
    if device_kind == "cpu":
        flops *= RUNTIME_SPEEDUP.get(runtime, 1.0)
    per_item = 2 * gmacs * 1e9 / flops + DECODE_S
    fixed = FIXED_S["load"] + FIXED_S["scores"] + (FIXED_S["bench"] if bench else 0.0)
    return n_samples * per_item + fixed


def _subsample_size(n_total: int, n_classes: int, max_per_class: int | None, max_samples: int | None) -> int:
    cap = n_total
    if max_per_class:
        cap = min(cap, max_per_class * max(n_classes, 1))
    if max_samples:
        cap = min(cap, max_samples)
    return cap


def make_plan(
    cfg: RunConfig, dataset: Any, *, offline: bool, catalog: Any = None, task: FeatureTask | None = None
) -> tuple[Plan, list[Candidate], dict[str, Any]]:
    """Choose candidates, the subsample and the shortlist size under `cfg` (and its budget).

    `task` supplies the candidate filter (default: the run's task, ``cfg.task`` or classification).

    Returns:
        (plan, candidates, sampling kwargs for `stratified_sample`).
    """
    kind = _device_kind(cfg.device)
    n_classes = len(dataset.classes)
    n_total = len(dataset.samples)
    max_samples = cfg.max_samples if cfg.max_samples is not None else DEFAULT_MAX_SAMPLES
    max_per_class = cfg.max_per_class
    if task is None:
        from advisor.tasks import DEFAULT_TASK, FeatureTask, get_task

        found = get_task(cfg.task or DEFAULT_TASK)
        assert isinstance(found, FeatureTask), f"task {found.name} does not run the feature stages"
        task = found
    cands, excluded = task.select_candidates(dataset.modality, cfg.constraints(offline=offline), catalog)
    budget_s = cfg.budget_minutes * 60 if cfg.budget_minutes else None

    def total(cs: Sequence[Candidate], n: int) -> float:
        short = min(len(cs), cfg.shortlist or DEFAULT_SHORTLIST)
        floors = 1 if cfg.baselines else 0
        probes = (short + floors) * FIXED_S["probe"]
        return sum(estimate_candidate_seconds(c, n, kind, cfg.bench, cfg.runtime) for c in cs) + probes

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
    warnings: list[str] = []
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
                "estimated_seconds": round(
                    estimate_candidate_seconds(c, n_sub, kind, cfg.bench, cfg.runtime), 1
                ),
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
