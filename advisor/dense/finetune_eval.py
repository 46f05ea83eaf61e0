"""Held-out metrics of a dense fine-tune: the value, an image-bootstrap interval, and paired comparisons.

The unit of resampling is the validation image (objects and pixels of one image are not independent). Every model
of a run is resampled with the same seeded index sets (`resample_indices`: a function of the number of validation
images and the seed only), so the per-resample values stored with each result (``boot``) pair up: the difference of
two models on the same resamples is a paired bootstrap, with no prediction kept after the fine-tune.

- detection: COCO box mAP (`advisor.metrics.detection.detection_metrics`) of the resampled images, a resampled
  image entering as often as it was drawn;
- segmentation: mIoU from the sum of the resampled images' confusion matrices (the same accumulated-matrix mIoU
  as `advisor.metrics.segmentation.SegmentationConfusion`, not a per-image average).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from advisor.dense.labels import is_background
from advisor.dense.types import BOX_TASKS, DenseDataset, Detections

BOOTSTRAP = {"detection": 100, "segmentation": 1000}  # resamples: a COCO evaluation per resample is the cost
MIN_CI_IMAGES = 5  # fewer held-out images than this: no interval (a bootstrap of 2-4 images says nothing)
ALPHA = 0.05


def resample_indices(n: int, b: int, seed: int) -> np.ndarray:
    """``(b, n)`` image indices drawn with replacement (seeded by `seed` and `n` only)."""
    rng = np.random.default_rng([seed, n, 7])
    return rng.integers(0, n, size=(b, n))


def miou(matrix: np.ndarray) -> float | None:
    """mIoU of a ``(K, K + 1)`` confusion matrix (last column: predicted as no class), over the classes present."""
    m = np.asarray(matrix, dtype=np.float64)
    k = m.shape[0]
    conf = m[:, :k]
    tp = np.diag(conf)
    union = m.sum(axis=1) + conf.sum(axis=0) - tp
    present = union > 0
    return float(np.mean(tp[present] / union[present])) if present.any() else None


def image_confusion(pred: np.ndarray, target: np.ndarray, k: int, ignore_index: int | None) -> np.ndarray:
    """The ``(k, k + 1)`` confusion matrix of one image (targets outside 0..k-1 or `ignore_index`: not scored)."""
    from advisor.metrics.segmentation import SegmentationConfusion

    conf = SegmentationConfusion(k, ignore_index)
    conf.update(pred, target)
    return conf.matrix


def det_map(
    ds: DenseDataset,
    preds: Mapping[str, Detections],
    idx: Sequence[int] | np.ndarray | None = None,
    class_map: Mapping[int, int | None] | None = None,
) -> float | None:
    """COCO box mAP of `preds` on the images `idx` of `ds` (None: all; a repeated index counts again)."""
    from advisor.metrics.detection import detection_metrics

    if idx is None:
        return detection_metrics(ds, preds, class_map=class_map).map
    samples, sub_preds = [], {}
    for j, i in enumerate(idx):
        s = ds.samples[int(i)]
        sid = f"{s.id}#{j}"
        samples.append(replace(s, id=sid))
        if s.id in preds:
            sub_preds[sid] = preds[s.id]
    return detection_metrics(replace(ds, samples=samples), sub_preds, class_map=class_map).map


def boot_values(n: int, stat: Callable[[np.ndarray], float | None], b: int, seed: int) -> list[float | None]:
    """`stat` of each of the `b` seeded resamples of `n` images."""
    return [stat(idx) for idx in resample_indices(n, b, seed)]


def percentile_ci(values: Sequence[float | None], n_images: int) -> list[float] | None:
    """The 95% percentile interval of bootstrap `values` (None below `MIN_CI_IMAGES` images or without values)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if n_images < MIN_CI_IMAGES or len(v) < 10:
        return None
    lo, hi = np.quantile(v, [ALPHA / 2, 1 - ALPHA / 2])
    return [float(lo), float(hi)]


def evaluate_val(
    task: str,
    val: DenseDataset,
    preds: Any,
    *,
    b: int,
    seed: int,
    class_map: Mapping[int, int | None] | None = None,
) -> dict[str, Any]:
    """The value, interval and per-resample values of predictions on the validation images.

    `preds`: detection — ``{sample id: Detections}``; segmentation — per image ``(K, K + 1)`` confusion matrices
    (in `val`'s order). Returns ``{value, ci, boot, metrics}`` (``metrics``: the full summary on all images).
    """
    n = len(val.samples)
    if task in BOX_TASKS:
        from advisor.metrics.detection import detection_metrics

        full = detection_metrics(val, preds, class_map=class_map)
        metrics = full.summary() | {"per_class_ap": full.per_class_ap, "protocol": full.protocol}
        value = full.map

        def stat(idx: np.ndarray) -> float | None:
            return det_map(val, preds, idx, class_map)
    else:
        mats = np.asarray(preds, dtype=np.int64)
        total = mats.sum(axis=0)
        value = miou(total)
        metrics = _seg_summary(total, val)

        def stat(idx: np.ndarray) -> float | None:
            return miou(mats[idx].sum(axis=0))

    boot = boot_values(n, stat, b, seed) if n >= MIN_CI_IMAGES else []
    return {"value": value, "ci": percentile_ci(boot, n), "boot": boot, "metrics": metrics}


def _seg_summary(total: np.ndarray, val: DenseDataset) -> dict[str, Any]:
    from advisor.metrics.segmentation import SegmentationConfusion

    k = total.shape[0]
    names = list(val.classes) if len(val.classes) == k else None
    conf = SegmentationConfusion(k, val.ignore_index, names)
    conf.matrix = total.copy()
    conf.n_images = len(val.samples)
    r = conf.result().to_dict()
    return {key: r.get(key) for key in ("miou", "per_class_iou", "mean_dice", "pixel_accuracy", "protocol")}


def paired(
    a: Sequence[float | None], b: Sequence[float | None], value_a: float, value_b: float
) -> dict[str, Any]:
    """Paired bootstrap comparison of two models' values on the same resamples: the difference ``a - b``, its 95%
    interval and whether the interval excludes 0 (``a_better`` / ``b_better`` / ``tied``)."""
    d = np.asarray(
        [x - y for x, y in zip(a, b, strict=True) if x is not None and y is not None], dtype=np.float64
    )
    out: dict[str, Any] = {"difference": float(value_a - value_b), "resamples": int(len(d))}
    if len(d) < 10:
        return out | {"ci": None, "outcome": "not tested", "method": "too few images for a paired bootstrap"}
    lo, hi = (float(x) for x in np.quantile(d, [ALPHA / 2, 1 - ALPHA / 2]))
    outcome = "a_better" if lo > 0 else "b_better" if hi < 0 else "tied"
    method = f"paired image bootstrap ({len(d)} resamples of the held-out images, the same for both)"
    return out | {"ci": [lo, hi], "outcome": outcome, "method": method}


def interval_compare(ci_a: Sequence[float] | None, ci_b: Sequence[float] | None) -> str:
    """``a_better`` / ``b_better`` when the two 95% intervals are disjoint, else ``tied`` (``not tested``: no
    interval)."""
    if not ci_a or not ci_b:
        return "not tested"
    if ci_a[0] > ci_b[1]:
        return "a_better"
    return "b_better" if ci_b[0] > ci_a[1] else "tied"


# ------------------------------------------------------------------------------------------------ shared classes
def restricted_det(
    val: DenseDataset, mapping: Mapping[int, int]
) -> tuple[DenseDataset, dict[int, int | None], dict[int, int | None]]:
    """`val` with only the classes of `mapping` (data index → model label), re-indexed; data index → new index;
    model label → new index."""
    from advisor.dense.zero_shot import _restricted_detection

    sub, model_map = _restricted_detection(val, dict(mapping))
    new_of_old: dict[int, int | None] = {old: i for i, old in enumerate(sorted(mapping))}
    return sub, new_of_old, model_map


def seg_luts(
    classes: Sequence[str], mapping: Mapping[int, int], model_classes: Sequence[str]
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Segmentation in the shared classes (+ the data's background): their names, and lookup tables from data
    target values, data-space predictions and model-space predictions to the restricted index.

    Targets of other classes become ``-2`` (not scored); predictions outside the shared classes become the
    background (``-1``, never right, when the data has none), as the zero-shot rung reads them.
    """
    bg = next((i for i, c in enumerate(classes) if is_background(c)), None)
    kept = sorted(mapping) + ([bg] if bg is not None else [])
    new = {old: i for i, old in enumerate(kept)}
    other = new[bg] if bg is not None else -1
    target = np.full(len(classes) + 256, -2, dtype=np.int64)
    data_pred = np.full(len(classes) + 1, other, dtype=np.int64)
    for old, i in new.items():
        target[old] = i
        data_pred[old] = i
    model_pred = np.full(len(model_classes) + 1, other, dtype=np.int64)
    for old, j in mapping.items():
        model_pred[j] = new[old]
    bg_model = next((j for j, c in enumerate(model_classes) if is_background(c)), None)
    if bg_model is not None and bg is not None:
        model_pred[bg_model] = new[bg]
    return [classes[k] for k in kept], target, data_pred, model_pred


def lut(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`table` applied to `values` (out-of-range values take the table's last entry)."""
    v = np.asarray(values, dtype=np.int64)
    return table[np.clip(v, 0, len(table) - 1)]
