"""Catalog entries from timm's pretrained-cfg table, with the published results and benchmark GMACs beside it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from advisor.catalog.licenses import normalize_license
from advisor.catalog.schema import CatalogEntry, Metric
from advisor.catalog.sources_common import (
    TIMM_BENCH_GMACS,
    TIMM_CFGS,
    TIMM_RESULTS,
    _as_tables,
    _count_meta_params,
    _floats,
    _read_csv,
    _size3,
    _timm_repo,
    family_of,
    pretrain_chain,
    year_from_arxiv,
)

# Head sizes of classifiers (ImageNet-1k and the larger label sets timm ships heads for).
_CLASSIFIER_HEADS = (1000, 1001, 11821, 11221, 19168, 21841, 21842, 21843)


def _timm_results(sources: dict[str, Path]) -> dict[str, dict[str, dict[str, str]]]:
    """model -> dataset -> results row (with `_file`, the table it came from)."""
    results: dict[str, dict[str, dict[str, str]]] = {}
    for fname, dataset in TIMM_RESULTS.items():
        for r in _read_csv(fname, sources):
            results.setdefault(r["model"], {})[dataset] = r | {"_file": fname}
    return results


def _timm_gmacs(sources: dict[str, Path]) -> dict[tuple[str, int], tuple[float, str]]:
    """(model, image size) -> (infer_gmacs, table); the most recent table wins."""
    gmacs: dict[tuple[str, int], tuple[float, str]] = {}
    for fname in reversed(TIMM_BENCH_GMACS):  # later (more recent) files overwrite older ones
        for r in _read_csv(fname, sources):
            if r.get("infer_gmacs"):
                gmacs[(r["model"], int(r["infer_img_size"]))] = (float(r["infer_gmacs"]), fname)
    return gmacs


def _timm_metrics(results: dict[str, dict[str, str]], timm_repo: str) -> tuple[Metric, ...]:
    """top1/top5 per results table a model appears in."""
    metrics = []
    for dataset, res in results.items():
        for metric in ("top1", "top5"):
            if res.get(metric):
                metrics.append(
                    Metric(
                        dataset=dataset,
                        name=metric,
                        value=float(res[metric]),
                        source=timm_repo + res["_file"],
                        resolution=int(res["img_size"]),
                    )
                )
    return tuple(metrics)


def _timm_probe(
    r: dict[str, str], available: set[str], count_params: bool
) -> tuple[int | None, int | None, bool, str]:
    """(n_params, num_features, probeable, note) of one row's architecture in the installed timm."""
    import timm

    arch = r["architecture"]
    num_classes = int(r["num_classes"] or 0)
    n_params: int | None = None
    feat: int | None = None
    probeable, note = (
        True,
        "timm architecture; weights from the Hugging Face hub (" + (r["hf_hub_id"] or "timm") + ")",
    )
    if arch not in available:
        probeable, note = False, f"architecture {arch!r} is not in the installed timm {timm.__version__}"
    elif count_params:
        n_params, feat, err = _count_meta_params(
            partial(timm.create_model, arch, pretrained=False, num_classes=num_classes)
        )
        if err:
            note = f"{note}; parameter count unavailable ({err})"
    return n_params, feat, probeable, note


def _timm_preprocess(r: dict[str, str]) -> dict[str, Any]:
    """The preprocessing a row's weights need (mean/std/interpolation/crop)."""
    return {
        "mean": _floats(r["mean"]),
        "std": _floats(r["std"]),
        "interpolation": r["interpolation"] or None,
        "crop_pct": float(r["crop_pct"]) if r["crop_pct"] else None,
        "crop_mode": r["crop_mode"] or None,
    }


def _timm_entry(
    r: dict[str, str],
    probe: tuple[int | None, int | None, bool, str],
    metrics: tuple[Metric, ...],
    gmacs: dict[tuple[str, int], tuple[float, str]],
    timm_repo: str,
    timm_version: str,
) -> CatalogEntry:
    """The entry of one pretrained-cfg row, given its probe result and published metrics."""
    n_params, feat, probeable, note = probe
    arch, name = r["architecture"], r["model"]
    num_classes = int(r["num_classes"] or 0)
    input_size = _size3(r["input_size"])
    g = gmacs.get((arch, input_size[1])) if input_size else None
    spdx, lclass = normalize_license(r["license"] or None)
    task = (
        "image-classification"
        if num_classes in _CLASSIFIER_HEADS and "clip" not in name
        else "image-feature-extraction"
    )
    tag_tokens = [t for t in r["tag"].split("_") if t]
    return CatalogEntry(
        id=f"timm:{name}",
        source="timm",
        source_id=name,
        family=family_of(arch),
        architecture=arch,
        modality="image",
        task=task,
        n_params=n_params,
        n_params_source=f"counted: timm {timm_version} create_model on meta device" if n_params else None,
        gmacs=g[0] if g else None,
        gmacs_source=f"{timm_repo}{g[1]} (infer_gmacs at {input_size[1]}px)" if g and input_size else None,
        input_size=input_size,
        feature_dim=feat,
        num_classes=num_classes,
        pretrain_data=pretrain_chain(r["tag"]),
        license=spdx,
        license_raw=r["license"] or None,
        license_class=lclass,
        metrics=metrics,
        paper=(r["paper_name"] or r["paper_ids"] or None),
        year=year_from_arxiv(r["paper_ids"]),
        preprocess=_timm_preprocess(r),
        probeable=probeable,
        probe_note=note,
        tags=tuple(dict.fromkeys([*tag_tokens, *(["default"] if r["is_default_tag"] == "True" else [])])),
    )


def timm_entries(
    sources: Path | str | dict[str, Path] | None,
    only: Iterable[str] | None = None,
    count_params: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[CatalogEntry]:
    """One entry per row of timm's pretrained-cfg table (`only`: restrict to these timm model names).

    Args:
        sources: the source folder, or the tables `locate_sources` found in it.
        only: timm model names (`arch.tag`) to keep; all rows when None.
        count_params: count parameters by building each architecture on the meta device (slow) instead of
            leaving them unknown.
        progress: called with (done, total) before each row.

    Raises:
        UsageError: `sources` is not a folder holding the required tables.
    """
    import timm

    tables = _as_tables(sources)
    timm_repo = _timm_repo(tables)
    rows = _read_csv(TIMM_CFGS, tables)
    if only is not None:
        wanted = set(only)
        rows = [r for r in rows if r["model"] in wanted]
    results = _timm_results(tables)
    gmacs = _timm_gmacs(tables)
    available = set(timm.list_models())

    out = []
    for i, r in enumerate(rows):
        if progress:
            progress(i, len(rows))
        probe = _timm_probe(r, available, count_params)
        metrics = _timm_metrics(results.get(r["model"], {}), timm_repo)
        out.append(_timm_entry(r, probe, metrics, gmacs, timm_repo, timm.__version__))
    return out
