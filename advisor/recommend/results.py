"""The typed, versioned results of `advisor recommend`: what results.json holds and what reports render.

Schema ``advisor.recommend`` version ``SCHEMA_VERSION`` (results.json, ``--format json``)::

    schema            "advisor.recommend"
    schema_version    int; readers refuse a newer major version
    created_utc       ISO-8601 time the run finished
    advisor_version   package version that made it
    dataset           {name, root, modality, fingerprint, n_samples, n_classes, classes, layout,
                       n_skipped, subsample: {n, max_per_class, seed, ids_hash}, profile: {...} | null}
    config            the run config (every option of the command; see RunConfig in advisor.recommend.config),
                      plus offline_effective (bool) and task_effective (the task that ran, advisor.tasks)
    hardware          hardware fingerprint (advisor.bench.hardware_fingerprint) or a minimal one
    versions          {python, torch, timm, transformers, numpy, sklearn, advisor}
    weights           the ranking-combination weights used and the final-order rule (tie_order_signal,
                      final_order; see advisor.recommend.ranking)
    candidates        list of candidate records, final rank order first, then unranked ones:
        model_id, status ("ranked" | "screened" | "failed" | "excluded"), rank (1 = best) | null,
        stage ("prior" | "scores" | "probe"), source, family, n_params, gmacs, license, license_class,
        pretrain_data, imagenet_top1 and mteb_classification (published, %; the catalog's source), feature_dim,
        scores: {name: {value, higher_is_better, applicable, reason, ci}},
        domain: {source_confidence, source_entropy_norm, feature_*: ...} (dataset-similarity signals),
        predicted: {score, rank, uncertainty, signals: {name: z}},
        probe: {accuracy, accuracy_ci (95 % Wilson), macro_f1, macro_f1_ci (bootstrap), best_c, best_l2,
                chosen_c (per outer fold, nested CV), c_at_grid_edge, per_class_accuracy, ...,
                tie_test: {group, leader, method ("leader" | "mcnemar-holm" | "ci-overlap"), p_value (exact
                McNemar vs #1), p_holm (Holm over the comparisons with #1), n_shared, discordant}} | null,
        bench: {batch_size, latency_ms_p50, latency_ms_p90, throughput_items_s, peak_memory_mb, device,
                pretrained, cached} | null,
        pareto (bool: on the accuracy-vs-latency front), tie_group (int: 1 = #1 and those not
        significantly different from it by the paired test in probe.tie_test),
        reasons (list of str; the first is the one-line reason), error (str | null), timings {stage: s},
        cached {stage: bool} (whether features/scores/probe/bench came from a cache in this run)
    winner            model_id of rank 1, or null
    advice            {strategy: "linear-probe" | "partial-finetune" | "full-finetune", unfreeze_blocks,
                       summary, evidence: {...}, thresholds: {...}}
    agreement         (optional) how much the probe, LogME and NCM-LOO agree on the probed candidates:
                      {n_models, signals, pairs: [{a, b, tau (Kendall tau-b), n}], mean_tau, top_picks,
                       top_tied_for_best, level ("agree" | "partly" | "disagree" | "not measured"), summary}
    timings           {stage: seconds}
    notes             list of str (warnings worth reading: skipped models, caveats)

Adding an optional key keeps the version; removing/renaming a key bumps it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.errors import ResultsError
from advisor.io import field_names
from advisor.recommend.records import BenchRecord, PredictedRecord, ProbeRecord, ScoreRecord

SCHEMA_NAME = "advisor.recommend"
SCHEMA_VERSION = 1

REQUIRED_KEYS = (
    "schema",
    "schema_version",
    "created_utc",
    "advisor_version",
    "dataset",
    "config",
    "hardware",
    "versions",
    "weights",
    "candidates",
    "winner",
    "advice",
    "timings",
    "notes",
)
CANDIDATE_REQUIRED_KEYS = (
    "model_id",
    "status",
    "rank",
    "stage",
    "n_params",
    "license",
    "scores",
    "predicted",
    "probe",
    "bench",
    "pareto",
    "tie_group",
    "reasons",
    "error",
)


@dataclass
class CandidateResult:
    """Everything the advisor learned about one candidate model (see the module docstring for fields)."""

    model_id: str
    status: str = "screened"
    rank: int | None = None
    stage: str = "prior"
    source: str | None = None
    family: str | None = None
    n_params: int | None = None
    gmacs: float | None = None
    license: str | None = None
    license_class: str | None = None
    pretrain_data: str | None = None
    imagenet_top1: float | None = None
    mteb_classification: float | None = (
        None  # the catalog's MTEB classification mean (text and audio encoders)
    )
    feature_dim: int | None = None
    scores: dict[str, ScoreRecord] = field(default_factory=dict)
    domain: dict[str, Any] = field(default_factory=dict)
    predicted: PredictedRecord = field(default_factory=lambda: PredictedRecord())
    probe: ProbeRecord | None = None
    bench: BenchRecord | None = None
    pareto: bool = False
    tie_group: int | None = None
    reasons: list[str] = field(default_factory=list)
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    cached: dict[str, bool] = field(default_factory=dict)  # stage -> result came from a cache in this run

    @property
    def probe_accuracy(self) -> float | None:
        return None if not self.probe else self.probe.get("accuracy")

    @property
    def latency_ms(self) -> float | None:
        return None if not self.bench else self.bench.get("latency_ms_p50")

    @property
    def memory_mb(self) -> float | None:
        return None if not self.bench else self.bench.get("peak_memory_mb")

    def to_dict(self) -> dict[str, Any]:
        """The stored candidate object of the schema (its typed records are plain JSON objects)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CandidateResult:
        """Rebuild from a stored candidate object (keys this version does not know are ignored)."""
        known = field_names(cls)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class RecommendResults:
    """The outcome of one `advisor recommend` run; reports are pure functions of it."""

    dataset: dict[str, Any]
    config: dict[str, Any]
    candidates: list[CandidateResult]
    hardware: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)
    advice: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    created_utc: str = ""
    agreement: dict[str, Any] = field(default_factory=dict)  # `advisor.recommend.agreement.signal_agreement`
    advisor_version: str = ""
    schema: str = SCHEMA_NAME
    schema_version: int = SCHEMA_VERSION
    run_dir: str | None = None  # where the files were written (not part of the stored record)

    @property
    def ranked(self) -> list[CandidateResult]:
        """Ranked candidates in rank order."""
        return sorted((c for c in self.candidates if c.rank is not None), key=lambda c: c.rank or 0)

    @property
    def winner(self) -> CandidateResult | None:
        r = self.ranked
        return r[0] if r else None

    def candidate(self, model_id: str) -> CandidateResult:
        for c in self.candidates:
            if c.model_id == model_id:
                return c
        raise KeyError(model_id)

    def to_dataframe(self) -> Any:
        """One row per candidate, ranked first, as a pandas DataFrame: the columns of results.csv, with values
        unformatted (accuracies as fractions, missing as None)."""
        from advisor.report.rows import result_rows, to_dataframe

        return to_dataframe(*result_rows(self))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready record (the documented schema; key order is stable)."""
        w = self.winner
        return {
            "schema": self.schema,
            "schema_version": self.schema_version,
            "created_utc": self.created_utc,
            "advisor_version": self.advisor_version,
            "dataset": self.dataset,
            "config": self.config,
            "hardware": self.hardware,
            "versions": self.versions,
            "weights": self.weights,
            "candidates": [c.to_dict() for c in self.candidates],
            "winner": w.model_id if w else None,
            "advice": self.advice,
            "agreement": self.agreement,
            "timings": self.timings,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecommendResults:
        """Validate and rebuild from a results.json dict. Raises ResultsError on a wrong schema/version."""
        validate_results_dict(d)
        return cls(
            dataset=d["dataset"],
            config=d["config"],
            candidates=[CandidateResult.from_dict(c) for c in d["candidates"]],
            hardware=d.get("hardware") or {},
            versions=d.get("versions") or {},
            weights=d.get("weights") or {},
            advice=d.get("advice") or {},
            agreement=d.get("agreement") or {},
            timings=d.get("timings") or {},
            notes=list(d.get("notes") or []),
            created_utc=d.get("created_utc", ""),
            advisor_version=d.get("advisor_version", ""),
            schema=d["schema"],
            schema_version=int(d["schema_version"]),
        )


def validate_results_dict(d: Any) -> None:
    """Check a results dict against the schema: name, version, required keys. Raises ResultsError."""
    if not isinstance(d, dict):
        raise ResultsError("results are not a JSON object")
    if d.get("schema") != SCHEMA_NAME:
        raise ResultsError(
            f"not an advisor recommend result (schema {d.get('schema')!r}, expected {SCHEMA_NAME!r})"
        )
    v = d.get("schema_version")
    if not isinstance(v, int) or v > SCHEMA_VERSION or v < 1:
        raise ResultsError(
            f"results schema version {v!r} is not supported (this advisor reads up to {SCHEMA_VERSION})",
            hint="upgrade advisor, or rerun `advisor recommend`",
        )
    missing = [k for k in REQUIRED_KEYS if k not in d]
    if missing:
        raise ResultsError(f"results are missing keys: {', '.join(missing)}")
    for c in d["candidates"]:
        miss = [k for k in CANDIDATE_REQUIRED_KEYS if k not in c]
        if miss:
            raise ResultsError(f"candidate {c.get('model_id')!r} is missing keys: {', '.join(miss)}")


RESULTS_FILE = "results.json"


def load_results(path: str | Path) -> RecommendResults:
    """Load results from a run directory (its results.json) or a results.json file.

    Raises:
        ResultsError: the path does not exist, is not JSON, or does not match the schema.
    """
    p = Path(path)
    f = p / RESULTS_FILE if p.is_dir() else p
    if not f.is_file():
        raise ResultsError(
            f"no {RESULTS_FILE} in {p}", hint="pass a run directory written by `advisor recommend --out DIR`"
        )
    try:
        d = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ResultsError(f"{f} is not readable JSON ({e})") from None
    r = RecommendResults.from_dict(d)
    r.run_dir = str(f.parent)
    return r
