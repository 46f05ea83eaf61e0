"""Orchestration of `advisor recommend`: a list of stages over a run state, and the public entry points.

Stages (`advisor.recommend.stages.STAGES`, each cached, so a rerun is fast and adding a candidate computes only that
candidate):

1. plan: read the data through the run's task (`advisor.tasks`), choose candidates, the subsample and the
   shortlist under the budget (`advisor.recommend.plan`), fix the evaluation protocol (`.protocol`);
2. features + scores: frozen features on a seeded stratified subsample (`advisor.features`), transferability
   scores (`advisor.scores`) and dataset-similarity signals, one candidate at a time as a pure function of a
   serialisable spec run by an executor (`advisor.recommend.work`);
3. measure: latency/memory (`advisor.bench`, cached per hardware fingerprint); ``--max-latency-ms`` /
   ``--max-memory-mb`` apply here (`.measure`);
4. predict: a combined predicted ranking with uncertainty (`advisor.recommend.ranking`);
5. probe the shortlist: cross-validated linear probes (`advisor.probe`), cached in ``cache_dir("probes")``;
6. rank: the final ranking by probe accuracy, paired tie groups, the Pareto front, reasons (`.reasons`);
7. floors: no-pretraining references probed the same way (`.baselines`);
8. advise: the strategy advice, optionally checked by fine-tuning (`.strategy`, `.finetune_check`);
9. results: the typed `RecommendResults`, written to the run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.recommend.config import (
    CACHE_VERSION,
    DECODE_S,
    DEFAULT_GMACS,
    DEFAULT_MAX_SAMPLES,
    DEFAULT_SCORES,
    DEFAULT_SHORTLIST,
    EFFECTIVE_FLOPS,
    FIXED_S,
    Plan,
    ProgressFn,
    RunConfig,
)
from advisor.recommend.finetune_check import _finetune_check
from advisor.recommend.measure import _bench, _bench_config, _bench_summary, _hardware, apply_resource_limits
from advisor.recommend.plan import _device_kind, _subsample_size, estimate_candidate_seconds, make_plan
from advisor.recommend.protocol import (
    MIN_PER_CLASS,
    SPLIT_EVAL_ORDER,
    _drop_small_classes,
    _probe_inputs,
    _probe_inputs_key,
    evaluation_protocol,
)
from advisor.recommend.reasons import build_reasons, clearly_faster
from advisor.recommend.results import CandidateResult, RecommendResults
from advisor.recommend.signals import _logits, _score_dict, domain_signals
from advisor.recommend.stages.results import default_out as _default_out
from advisor.recommend.store import _cache_get, _cache_path, _cache_put, feature_key
from advisor.recommend.work import (
    CandidateOutcome,
    CandidateSpec,
    Executor,
    SerialExecutor,
    evaluate_candidate,
)

if TYPE_CHECKING:
    from advisor.dense.results import DenseResults

__all__ = [
    "CACHE_VERSION",
    "DECODE_S",
    "DEFAULT_GMACS",
    "DEFAULT_MAX_SAMPLES",
    "DEFAULT_SCORES",
    "DEFAULT_SHORTLIST",
    "EFFECTIVE_FLOPS",
    "FIXED_S",
    "MIN_PER_CLASS",
    "SPLIT_EVAL_ORDER",
    "CandidateOutcome",
    "CandidateResult",
    "CandidateSpec",
    "Executor",
    "Plan",
    "ProgressFn",
    "RecommendResults",
    "RunConfig",
    "SerialExecutor",
    "_bench",
    "_bench_config",
    "_bench_summary",
    "_cache_get",
    "_cache_path",
    "_cache_put",
    "_default_out",
    "_device_kind",
    "_drop_small_classes",
    "_finetune_check",
    "_hardware",
    "_logits",
    "_probe_inputs",
    "_probe_inputs_key",
    "_score_dict",
    "_subsample_size",
    "apply_resource_limits",
    "build_reasons",
    "clearly_faster",
    "domain_signals",
    "estimate_candidate_seconds",
    "evaluate_candidate",
    "evaluation_protocol",
    "feature_key",
    "make_plan",
    "recommend",
    "run",
]


def recommend(
    data: str | Path | None = None, *, progress_fn: ProgressFn | None = None, **options: Any
) -> RecommendResults | Plan | DenseResults:
    """Rank pretrained models for a labelled dataset: the library behind `advisor recommend`.

    Args:
        data: dataset path (image folder, CSV/JSONL/manifest, audio folder); with ``demo=True`` it may be None.
        progress_fn: optional callback receiving one-line progress messages.
        **options: the fields of `RunConfig` (device, max_latency_ms, latency_batch_size, max_params,
            max_memory_mb, license, models, offline, budget_minutes, max_candidates, shortlist, max_per_class,
            max_samples, scores, folds, seed, bench, combine, batch_size, out, dry_run, progress, task,
            candidate_timeout_s), and
            ``demo=True`` for the bundled Fashion-MNIST sample (offline, packaged models, CPU by default),
            ``demo="detection"`` / ``"segmentation"`` for the generated dense demos.

    Returns:
        `RecommendResults` (`DenseResults` for dense tasks; a `Plan` when ``dry_run=True``). With ``out`` set (default "auto") the run directory
        is written (results.json, results.csv, report.md, report.html).

    Raises:
        DatasetError, UsageError: bad data or options. Candidates that fail to load are recorded, not raised.
    """
    from advisor.api import run_config

    cfg = run_config(data, demo=options.pop("demo", False), **options)
    return run(cfg, progress_fn=progress_fn)


def run(
    cfg: RunConfig,
    *,
    progress_fn: ProgressFn | None = None,
    catalog: Any = None,
    executor: Executor | None = None,
) -> RecommendResults | Plan | DenseResults:
    """Execute a recommend run for `cfg` (see `recommend`) through its task's stages.

    The task is ``cfg.task`` or the one detected from the data (`advisor.tasks.detect_task`). Classification runs
    `advisor.recommend.stages.STAGES` over one `RunState`; detection and segmentation run
    `advisor.dense.pipeline.STAGES` over a `DenseRunState`.

    Args:
        cfg: the run's options.
        progress_fn: optional callback receiving one-line progress messages.
        catalog: the model catalog to choose from (default: the packaged one).
        executor: runs each candidate's features + scores (default `SerialExecutor`: in this process, in order).

    Returns:
        The `RecommendResults` (`DenseResults` for dense tasks), or the `Plan` when ``cfg.dry_run``.
    """
    from advisor.models.pool import reuse_models
    from advisor.tasks import detect_task, get_task

    task = get_task(cfg.task or detect_task(cfg.data))
    with reuse_models():  # a model loaded by the features stage is not loaded again by the bench stage
        return task.run(cfg, progress_fn=progress_fn, catalog=catalog, executor=executor)  # type: ignore[no-any-return]
