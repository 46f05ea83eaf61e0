"""Catalog entries from torchvision's weights metadata (one row per `*_Weights` enum member)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from advisor.catalog.licenses import normalize_license
from advisor.catalog.schema import DENSE_TASKS, CatalogEntry, Metric
from advisor.catalog.sources_common import (
    TV_WEIGHTS,
    _as_tables,
    _build_module,
    _floats,
    _read_csv,
    family_of,
)
from advisor.catalog.sources_dense import torchvision_dense_fields

_TV_TASKS = {
    "classification": ("image", "image-classification"),
    "quantization": ("image", "image-classification"),
    "segmentation": ("image", "semantic-segmentation"),
    "video": ("video", "video-classification"),
    "optical_flow": ("video", "optical-flow"),
}
_TV_LICENSE = "BSD-3-Clause (torchvision; the weights' meta names no license of their own)"


# weights-name prefix -> pretraining data; the first match wins (COCO_WITH_VOC_LABELS before COCO)
_TV_PRETRAIN_PREFIXES = (
    ("IMAGENET1K", "imagenet-1k"),
    ("COCO_WITH_VOC_LABELS", "coco (voc labels)"),
    ("COCO", "coco"),
    ("KINETICS400", "kinetics-400"),
)


def _tv_pretrain(weights: str, task: str) -> str | None:
    w = weights.upper()
    if "SWAG" in w:
        return "instagram-3.6b -> imagenet-1k" if "E2E" in w or "LINEAR" in w else "instagram-3.6b"
    for prefix, data in _TV_PRETRAIN_PREFIXES:
        if w.startswith(prefix):
            return data
    if "SINTEL" in w or "KITTI" in w or "THINGS" in w or "CHAIRS" in w:
        return (
            "flying-chairs -> flying-things"
            + (" -> sintel" if "SINTEL" in w else "")
            + (" -> kitti" if "KITTI" in w else "")
        )
    return None


def _tv_feature_dim(builder: str) -> int | None:
    """Width of the last Linear layer's input (the pooled features a classifier sees)."""
    import torch
    from torchvision import models as tvm

    m = _build_module(lambda: tvm.get_model(builder, weights=None))
    last = None
    for mod in m.modules():
        if isinstance(mod, torch.nn.Linear):
            last = mod
    return int(last.in_features) if last is not None else None


def _tv_task(r: dict[str, str]) -> tuple[str, str]:
    """(modality, task) of a weights row; detection rows by the metrics they publish."""
    if r["task"] != "detection":
        return _TV_TASKS[r["task"]]
    if r["COCO-val2017:mask_map"]:
        return "image", "instance-segmentation"
    if r["COCO-val2017:kp_map"]:
        return "image", "keypoint-detection"
    return "image", "object-detection"


def _tv_metrics(r: dict[str, str], src: str) -> tuple[Metric, ...]:
    """The `Dataset:metric` columns of a weights row (the `tf_` transform columns are not metrics)."""
    metrics = []
    for col, value in r.items():
        if ":" in col and value and not col.startswith("tf_"):
            dataset, metric = col.split(":", 1)
            dataset = {"ImageNet-1K": "imagenet-1k"}.get(dataset, dataset.lower())
            metric = {"acc@1": "top1", "acc@5": "top5"}.get(metric, metric)
            metrics.append(Metric(dataset=dataset, name=metric, value=float(value), source=src))
    return tuple(metrics)


def _tv_preprocess(r: dict[str, str], crop: int | None) -> dict[str, Any] | None:
    """The eval transform of a weights row, or None where the row gives none."""
    if not r["tf_mean"]:
        return None
    return {
        "mean": _floats(r["tf_mean"]),
        "std": _floats(r["tf_std"]),
        "interpolation": r["tf_interpolation"] or None,
        "resize_size": int(r["tf_resize_size"].split("x")[0]) if r["tf_resize_size"] else None,
        "crop_size": crop,
    }


def _tv_note(task_kind: str, task: str) -> str:
    """Why (or how) a weights row can be probed."""
    if task_kind == "classification":
        return "torchvision classification weights; features are the classifier's input"
    if task_kind == "quantization":
        return "quantized int8 model: CPU inference only, not used as a feature extractor"
    return f"{task} model, not a classification backbone (use its backbone's classification weights)"


def _tv_entry(r: dict[str, str], src: str, count_params: bool) -> CatalogEntry:
    """The entry of one weights row (`src`: provenance of its figures)."""
    builder, weights, task_kind = r["builder"], r["weights"], r["task"]
    modality, task = _tv_task(r)
    crop = int(r["tf_crop_size"].split("x")[0]) if r["tf_crop_size"] else None
    input_size = (3, crop, crop) if crop and modality == "image" and task == "image-classification" else None
    quantized = task_kind == "quantization"
    probeable = task_kind == "classification"
    lic_raw = r["license"] or None
    spdx, lclass = normalize_license(lic_raw) if lic_raw else ("BSD-3-Clause", "permissive")
    n_params = int(r["num_params"]) if r["num_params"] else None
    feat = _tv_feature_dim(builder) if count_params and probeable else None
    tags = (
        "default" if r["is_default"] == "True" else "",
        "quantized" if quantized else "",
        r["quant_backend"],
    )
    dense = torchvision_dense_fields(builder, weights) if task in DENSE_TASKS else {}
    return CatalogEntry(
        id=f"torchvision:{builder}.{weights}",
        source="torchvision",
        source_id=f"{r['weights_enum']}.{weights}",
        family=family_of(builder),
        architecture=builder,
        modality=modality,
        task=task,
        n_params=n_params,
        n_params_source=src if n_params else None,
        gmacs=float(r["gflops"]) if r["gflops"] else None,
        gmacs_source=f"{src}: `_ops` (counts multiply-adds)" if r["gflops"] else None,
        input_size=input_size,
        feature_dim=feat,
        num_classes=int(r["num_categories"]) if r["num_categories"] else None,
        pretrain_data=_tv_pretrain(weights, task_kind),
        license=spdx,
        license_raw=lic_raw or _TV_LICENSE,
        license_class=lclass,
        metrics=_tv_metrics(r, src),
        file_mb=float(r["file_size_mb"]) if r["file_size_mb"] else None,
        file_mb_source=src if r["file_size_mb"] else None,
        preprocess=_tv_preprocess(r, crop),
        probeable=probeable,
        probe_note=_tv_note(task_kind, task),
        tags=tuple(t for t in tags if t),
        **dense,
    )


def torchvision_entries(
    sources: Path | str | dict[str, Path] | None,
    only: Iterable[str] | None = None,
    count_params: bool = True,
) -> list[CatalogEntry]:
    """One entry per torchvision weights enum member (`only`: restrict to these `builder.WEIGHTS` names).

    Args:
        sources: the source folder, or the tables `locate_sources` found in it.
        only: `builder.WEIGHTS` names to keep; all rows when None.
        count_params: take each classifier's feature width from its architecture built on the meta device
            (parameter counts come from the table either way).

    Raises:
        UsageError: `sources` is not a folder holding the required tables.
    """
    import torchvision

    tables = _as_tables(sources)
    rows = _read_csv(TV_WEIGHTS, tables)
    if only is not None:
        wanted = set(only)
        rows = [r for r in rows if f"{r['builder']}.{r['weights']}" in wanted]
    src = f"torchvision {torchvision.__version__.split('+')[0]} weights meta ({TV_WEIGHTS})"
    return [_tv_entry(r, src, count_params) for r in rows]
