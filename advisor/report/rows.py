"""The results as rows of values, one per candidate: what results.csv holds and ``to_dataframe()`` returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from advisor.dense.results import DenseResults
    from advisor.recommend.results import RecommendResults

CSV_COLUMNS = (
    "rank",
    "model_id",
    "status",
    "stage",
    "probe_accuracy",
    "probe_accuracy_ci_low",
    "probe_accuracy_ci_high",
    "probe_macro_f1",
    "predicted_score",
    "predicted_rank",
    "predicted_uncertainty",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_batch_size",
    "latency_reliable",
    "latency_unreliable_reason",
    "peak_memory_mb",
    "n_params",
    "gmacs",
    "imagenet_top1",
    "mteb_classification",
    "license",
    "license_class",
    "pretrain_data",
    "pareto",
    "tie_group",
    "reason",
    "error",
)


def result_rows(r: RecommendResults) -> tuple[list[str], list[list[Any]]]:
    """The header and one row of values per candidate (ranked first): accuracies as fractions, one
    ``score_<name>`` column per score; what results.csv holds and `RecommendResults.to_dataframe` returns."""
    names: list[str] = []
    for c in r.candidates:
        for k in c.scores:
            if k not in names:
                names.append(k)
    header = [*CSV_COLUMNS, *(f"score_{n}" for n in names)]
    rows = []
    order = r.ranked + [c for c in r.candidates if c.rank is None]
    for c in order:
        p = c.probe or {}
        ci = p.get("accuracy_ci") or (None, None)
        b = c.bench or {}
        row = [
            c.rank,
            c.model_id,
            c.status,
            c.stage,
            p.get("accuracy"),
            ci[0],
            ci[1],
            p.get("macro_f1"),
            c.predicted.get("score"),
            c.predicted.get("rank"),
            c.predicted.get("uncertainty"),
            b.get("latency_ms_p50"),
            b.get("latency_ms_p90"),
            b.get("batch_size"),
            b.get("reliable"),
            b.get("unreliable_reason"),
            b.get("peak_memory_mb"),
            c.n_params,
            c.gmacs,
            c.imagenet_top1,
            c.mteb_classification,
            c.license,
            c.license_class,
            c.pretrain_data,
            c.pareto,
            c.tie_group,
            c.reasons[0] if c.reasons else "",
            c.error or "",
        ]
        row += [(c.scores.get(n) or {}).get("value") for n in names]
        rows.append(row)
    return header, rows


def dense_rows(r: DenseResults) -> tuple[list[str], list[list[Any]]]:
    """The header and one row of values per candidate of a detection/segmentation run: role, rung figures,
    latency, error; what its results.csv holds and `DenseResults.to_dataframe` returns."""
    cols = [
        "model_id",
        "role",
        "rank",
        "tied_with_best",
        "proxy",
        "proxy_ci_low",
        "proxy_ci_high",
        "zero_shot",
    ]
    cols += ["classes_matched", "p50_ms", "license", "error"]
    cols += ["roi_value", "roi_accuracy", "roi_box_r2"]
    cols += ["finetune", "finetune_ci_low", "finetune_ci_high"]
    rows = []
    for c in r.candidates:
        ci = (c.proxy or {}).get("ci") or (None, None)
        ft_ci = (c.finetune or {}).get("ci") or (None, None)
        row = [c.model_id, c.role, c.rank, c.tied_with_best, c.proxy_value, ci[0], ci[1], c.zero_shot_value]
        row += [(c.zero_shot or {}).get("classes_matched"), c.latency_ms, c.license, c.error]
        roi = (c.proxy or {}).get("roi_probe") or {}
        row += [roi.get(k) for k in ("value", "accuracy", "box_r2")]
        row += [c.finetune_value, ft_ci[0], ft_ci[1]]
        rows.append(row)
    return cols, rows


def to_dataframe(header: list[str], rows: list[list[Any]]) -> Any:
    """A pandas DataFrame of `header` and `rows` (pandas is imported here, on use)."""
    import pandas as pd

    return pd.DataFrame(rows, columns=header)
