"""Stage 9: assemble the typed `RecommendResults` (provenance included) and write the run directory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from advisor.errors import ResultsNotSaved, StorageError
from advisor.recommend.config import ProgressFn
from advisor.recommend.measure import _hardware
from advisor.recommend.state import RunState

STATUS_ORDER = {"baseline": 0, "screened": 1, "failed": 2, "excluded": 3}  # of the unranked, after the ranked


def assemble(state: RunState, say: ProgressFn) -> RunState:
    """Ranked candidates first, then the rest by status; with ``out`` set, write results/report files."""
    import advisor
    from advisor.recommend.ranking import weights_record
    from advisor.recommend.results import RecommendResults
    from advisor.versions import library_versions

    cfg, results = state.cfg, state.results
    ranked_first = state.probed + [results[m] for m in state.order if results[m].rank is None]
    rest = [c for c in results.values() if c not in ranked_first]
    rest.sort(key=lambda c: (STATUS_ORDER.get(c.status, 3), c.model_id))
    res = RecommendResults(
        dataset=_dataset_record(state),
        config=cfg.to_dict() | {"offline_effective": state.offline, "task_effective": state.get_task().name},
        candidates=ranked_first + rest,
        hardware=_hardware(),
        versions=library_versions(),
        weights=weights_record(),
        advice=state.advice,
        agreement=state.agreement,
        timings=state.timings | {"total": time.perf_counter() - state.t_start},
        notes=state.notes,
        created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        advisor_version=advisor.__version__,
    )
    if cfg.out:
        from advisor.report.render import write_run_dir

        out = default_out(res.dataset["name"]) if cfg.out == "auto" else Path(cfg.out)
        try:
            write_run_dir(res, out)
        except StorageError as e:  # the ranking is computed: hand it back with the error, to be shown
            raise ResultsNotSaved(e.message, hint=e.hint, results=res) from e
        say(f"wrote {out}")
    state.out = res
    return state


def _dataset_record(state: RunState) -> dict[str, Any]:
    cfg, dataset, samples, protocol, sampling = (
        state.cfg,
        state.dataset,
        state.samples,
        state.protocol,
        state.sampling,
    )
    counts = state.label_counts if state.label_counts is not None else []
    return {
        "name": Path(str(dataset.root)).name,
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
            "ids_hash": state.ids_hash,
        },
        "evaluation": {
            "protocol": protocol["protocol"],
            "eval_split": protocol["eval_split"],
            "n_eval": len(protocol["eval_ids"]) if protocol["eval_split"] else len(samples),
            "group_column": cfg.group_column,
            "group_pattern": cfg.group_pattern,
            "n_groups": len(set(protocol["groups"].values())) if protocol["groups"] else None,
        },
        "profile": state.profile,
    }


def default_out(dataset_name: str) -> Path:
    """``./advisor-runs/<UTC timestamp>-<dataset name>`` (the ``out="auto"`` run directory)."""
    ts = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in dataset_name)[:60] or "dataset"
    return Path("advisor-runs") / f"{ts}-{safe}"
