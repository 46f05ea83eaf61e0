"""COCO detection metrics (mAP, AP50/75, AP by object size, AR, per-class AP, PR curves) through faster-coco-eval.

Ground truth is a `DenseDataset`, predictions are `Detections` per sample id. Both are written as COCO dicts with
image, category and annotation ids re-indexed from 1: pycocotools and faster-coco-eval treat a matched ground-truth
id of 0 as "unmatched" (the labelme COCO export starts its annotation ids at 0, which silently lowers mAP), and a
category id of 0 is a background class in some exports. Crowd boxes (``iscrowd``) are honoured as COCO does.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np

from advisor.dense.types import BOX_TASKS, MEDIUM_AREA, SMALL_AREA, DenseDataset, DenseSample, Detections
from advisor.errors import UsageError

log = logging.getLogger(__name__)

__all__ = ["DetectionMetrics", "coco_inputs", "detection_metrics"]

MAX_DETS = (1, 10, 100)
RECALL_GRID: tuple[float, ...] = tuple(float(x) for x in np.linspace(0.0, 1.0, 101))
# faster-coco-eval stats order for bbox with maxDets (1, 10, 100)
_STAT_NAMES = (
    "map",
    "map50",
    "map75",
    "map_small",
    "map_medium",
    "map_large",
    "ar1",
    "ar10",
    "ar100",
    "ar_small",
    "ar_medium",
    "ar_large",
)


@dataclass
class DetectionMetrics:
    """COCO box metrics of one set of predictions against a ground-truth dataset.

    Every metric is in [0, 1], or None where COCO has nothing to average (no ground truth in that size range or
    class: COCO's ``-1``).

    Attributes:
        map: AP averaged over IoU .50:.05:.95 (COCO "mAP").
        map50, map75: AP at IoU .50 and .75.
        map_small, map_medium, map_large: AP of objects with area < 32², 32²..96², > 96².
        ar1, ar10, ar100: recall with at most 1, 10, 100 detections per image (IoU .50:.95 mean).
        ar_small, ar_medium, ar_large: AR@100 by object size.
        per_class_ap: class name -> AP (IoU .50:.95); None for a class without ground truth.
        per_class_ap50: class name -> AP at IoU .50.
        pr_curves: class name -> ``{"precision_50": [...101], "precision": [...101]}``: precision at each point of
            `recall_grid`, at IoU .50 and averaged over IoU .50:.95 (maxDets 100, all sizes); classes without
            ground truth are left out.
        recall_grid: the 101 recall points (0, 0.01, ..., 1).
        n_images, n_gt, n_crowd, n_predictions: what was evaluated.
        protocol: one line saying exactly how the numbers were computed.
        notes: counted, named remarks (predictions dropped, ids re-indexed, ...).
    """

    map: float | None
    map50: float | None
    map75: float | None
    map_small: float | None
    map_medium: float | None
    map_large: float | None
    ar1: float | None
    ar10: float | None
    ar100: float | None
    ar_small: float | None
    ar_medium: float | None
    ar_large: float | None
    per_class_ap: dict[str, float | None]
    per_class_ap50: dict[str, float | None]
    pr_curves: dict[str, dict[str, list[float]]]
    n_images: int
    n_gt: int
    n_crowd: int
    n_predictions: int
    protocol: str
    notes: list[str] = field(default_factory=list)
    recall_grid: tuple[float, ...] = RECALL_GRID

    def summary(self) -> dict[str, float | None]:
        """The twelve COCO numbers, by name."""
        return {name: getattr(self, name) for name in _STAT_NAMES}

    def to_dict(self, *, curves: bool = True) -> dict[str, Any]:
        """JSON-able form (``curves=False`` leaves the PR curves out)."""
        fields = dataclasses.asdict(self)  # field order: the summary first, curves moved last
        pr_curves, recall_grid = fields.pop("pr_curves"), fields.pop("recall_grid")
        out: dict[str, Any] = {"task": "detection", **fields}
        if curves:
            out["recall_grid"] = list(recall_grid)
            out["pr_curves"] = pr_curves
        return out


M = TypeVar("M", bound=DetectionMetrics)


def _xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


# per sample: one dict of extra / overriding annotation fields per object (mask AP: its RLE and mask area)
AnnotationFields = Callable[[DenseSample], list[dict[str, Any]]]
# per prediction of one image: one dict of its geometry per detection ({"bbox": ...} or {"segmentation": ...})
Geometry = Callable[[str, Detections, DenseSample], list[dict[str, Any]]]


def _gt_dict(gt: DenseDataset, fields: AnnotationFields | None = None) -> tuple[dict[str, Any], int, int]:
    """The ground truth as a COCO dict (ids from 1), the number of objects and of crowd ones."""
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    n_crowd = 0
    for i, s in enumerate(gt.samples, start=1):
        images.append({"id": i, "file_name": s.id, "width": int(s.width), "height": int(s.height)})
        crowd = s.crowd_mask()
        areas = s.areas
        extra = fields(s) if fields is not None else None
        for j, (box, label) in enumerate(zip(_xywh(s.boxes), s.labels, strict=True)):
            w, h = float(box[2]), float(box[3])
            area = float(areas[j]) if areas is not None else w * h
            ann = {
                "id": len(anns) + 1,
                "image_id": i,
                "category_id": int(label) + 1,
                "bbox": [float(box[0]), float(box[1]), w, h],
                "area": area,
                "iscrowd": int(bool(crowd[j])),
            }
            anns.append(ann | extra[j] if extra is not None else ann)
            n_crowd += int(bool(crowd[j]))
    cats = [{"id": c + 1, "name": name} for c, name in enumerate(gt.classes)]
    return {"images": images, "annotations": anns, "categories": cats}, len(anns), n_crowd


def _boxes(sid: str, det: Detections, sample: DenseSample) -> list[dict[str, Any]]:
    del sid, sample
    return [{"bbox": [float(v) for v in box]} for box in _xywh(det.boxes)]


def _map_labels(labels: np.ndarray, class_map: Mapping[int, int | None] | None, n: int) -> np.ndarray:
    """Prediction labels in the ground truth's class indices; -1 for labels that map to no class."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if class_map is not None:
        mapped = [class_map.get(int(v)) for v in labels]
        labels = np.array([-1 if m is None else int(m) for m in mapped], dtype=np.int64)
    return np.where((labels >= 0) & (labels < n), labels, -1)


def _results(
    gt: DenseDataset,
    preds: Mapping[str, Detections],
    class_map: Mapping[int, int | None] | None,
    notes: list[str],
    geometry: Geometry = _boxes,
) -> list[dict[str, Any]]:
    """Predictions as a COCO results list (image ids as in `_gt_dict`); unknown images/classes are counted."""
    index = {s.id: i for i, s in enumerate(gt.samples, start=1)}
    unknown = [k for k in preds if k not in index]
    if unknown:
        notes.append(
            f"{len(unknown)} prediction image(s) not in the ground truth, ignored (e.g. {', '.join(unknown[:3])})"
        )
    out: list[dict[str, Any]] = []
    unmapped = 0
    for sid, det in preds.items():
        if sid not in index or len(det) == 0:
            continue
        shapes = geometry(sid, det, gt.samples[index[sid] - 1])
        labels = _map_labels(det.labels, class_map, gt.num_classes)
        scores = np.asarray(det.scores, dtype=np.float64).reshape(-1)
        for shape, label, score in zip(shapes, labels, scores, strict=True):
            if label < 0:
                unmapped += 1
                continue
            out.append(
                {"image_id": index[sid], "category_id": int(label) + 1, **shape, "score": float(score)}
            )
    if unmapped:
        notes.append(f"{unmapped} prediction(s) with a class outside the ground truth's classes, ignored")
    return out


def coco_inputs(
    gt: DenseDataset,
    preds: Mapping[str, Detections],
    *,
    class_map: Mapping[int, int | None] | None = None,
    iou_type: Literal["bbox", "segm"] = "bbox",
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """The COCO ground-truth dict and results list `detection_metrics` (``bbox``) or
    `advisor.dense.mask_ap.mask_metrics` (``segm``) evaluates (ids re-indexed from 1).

    Args:
        gt: detection ground truth (``segm``: instance-segmentation ground truth).
        preds: sample id -> detections (``segm``: `InstanceDetections`), labels in the ground truth's class
            indices, or mapped by `class_map`.
        class_map: prediction label -> ground-truth class index (None: drop that prediction).
        iou_type: ``bbox`` (boxes) or ``segm`` (every mask as a compressed RLE at its image's size).

    Returns:
        ``(gt_dict, results, notes)``; any COCO evaluator (pycocotools too) reads the first two with this
        ``iouType``.

    Raises:
        UsageError: ``segm`` predictions without masks, or masks not at their image's size.
    """
    notes: list[str] = []
    fields: AnnotationFields | None = None
    geometry: Geometry = _boxes
    if iou_type == "segm":
        from advisor.dense.mask_ap import mask_geometry

        fields, geometry = mask_geometry(notes)
    gt_dict, _, _ = _gt_dict(gt, fields)
    return gt_dict, _results(gt, preds, class_map, notes, geometry), notes


def _stat(value: float) -> float | None:
    return None if value < 0 or not np.isfinite(value) else float(value)


def _per_class(
    precision: np.ndarray, classes: list[str]
) -> tuple[dict[str, float | None], dict[str, float | None], dict[str, dict[str, list[float]]]]:
    """Per-class AP, AP50 and PR curves from COCO's precision array ``[T, R, K, A, M]`` (area all, maxDets 100)."""
    ap: dict[str, float | None] = {}
    ap50: dict[str, float | None] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    for k, name in enumerate(classes):
        p = precision[:, :, k, 0, -1]  # [T, R]
        if not (p > -1).any():
            ap[name] = ap50[name] = None
            continue
        ap[name] = float(np.mean(p[p > -1]))
        ap50[name] = float(np.mean(p[0][p[0] > -1]))
        curves[name] = {
            "precision_50": [float(v) for v in p[0]],
            "precision": [float(v) for v in p.mean(axis=0)],
        }
    return ap, ap50, curves


def _protocol(version: str, area_source: str) -> str:
    return (
        f"COCO bbox (faster-coco-eval {version}): AP over IoU .50:.05:.95, 101-point interpolated precision, "
        f"maxDets {'/'.join(map(str, MAX_DETS))}, sizes small < {int(SMALL_AREA)} <= medium < {int(MEDIUM_AREA)} "
        f"<= large px² by {area_source}; iscrowd honoured; image, category and annotation ids re-indexed from 1"
    )


def _evaluate(
    gt_dict: dict[str, Any], results: list[dict[str, Any]], iou_type: str = "bbox"
) -> tuple[np.ndarray, np.ndarray]:
    """Run faster-coco-eval (``bbox`` or ``segm``); returns (stats[12], precision[T,R,K,A,M])."""
    from faster_coco_eval import COCO, COCOeval_faster

    coco_gt = COCO(gt_dict, print_function=log.debug)
    coco_dt = coco_gt.loadRes(results) if results else _empty_results(coco_gt)
    ev = COCOeval_faster(coco_gt, coco_dt, iouType=iou_type, print_function=log.debug)
    ev.params.maxDets = list(MAX_DETS)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return np.asarray(ev.stats, dtype=np.float64)[: len(_STAT_NAMES)], np.asarray(ev.eval["precision"])


def _empty_results(coco_gt: Any) -> Any:
    return coco_gt.loadRes([])


def detection_metrics(
    gt: DenseDataset,
    preds: Mapping[str, Detections],
    *,
    class_map: Mapping[int, int | None] | None = None,
    iou_type: str = "bbox",
) -> DetectionMetrics:
    """COCO box metrics of `preds` against `gt`, by faster-coco-eval.

    Args:
        gt: detection ground truth (`DenseDataset` with task ``detection``, or the boxes of
            ``instance-segmentation``).
        preds: sample id (`DenseSample.id`) -> detections; images without an entry have no predictions.
        class_map: prediction label -> ground-truth class index (None drops it); default: labels are already
            ground-truth class indices.
        iou_type: ``bbox`` (mask AP: `advisor.dense.mask_ap.mask_metrics`).

    Returns:
        The metrics, with the protocol used and notes on anything ignored.

    Raises:
        UsageError: an unsupported `iou_type`, or ground truth that is not a detection dataset.
    """
    try:
        import faster_coco_eval
    except ImportError:
        raise UsageError(
            "COCO detection metrics need faster-coco-eval, which is not installed",
            hint="pip install 'faster-coco-eval==1.8.0' (or the advisor[dense] extra)",
        ) from None
    if iou_type != "bbox":
        raise UsageError(f"iou_type {iou_type!r} is not supported", hint="use iou_type='bbox'")
    if gt.task not in BOX_TASKS:  # instance segmentation: its boxes
        raise UsageError(
            f"{gt.root}: ground truth is a {gt.task} dataset, not detection",
            hint="use the segmentation metrics for mask data",
        )
    has_areas = any(s.areas is not None for s in gt.samples)
    protocol = _protocol(faster_coco_eval.__version__, "annotation area" if has_areas else "box area")
    return coco_metrics(gt, preds, class_map, protocol=protocol)


def coco_metrics(
    gt: DenseDataset,
    preds: Mapping[str, Detections],
    class_map: Mapping[int, int | None] | None,
    *,
    protocol: str,
    iou_type: str = "bbox",
    fields: AnnotationFields | None = None,
    geometry: Geometry = _boxes,
    cls: type[M] = DetectionMetrics,  # type: ignore[assignment]
    notes: list[str] | None = None,
) -> M:
    """The COCO evaluation shared by box and mask AP: ground truth and results written with `fields` and
    `geometry`, evaluated with `iou_type`, returned as `cls` (`DetectionMetrics` or a subclass); `notes` (the
    list `fields` writes to, if any) is the result's."""
    notes = [] if notes is None else notes
    gt_dict, n_gt, n_crowd = _gt_dict(gt, fields)
    results = _results(gt, preds, class_map, notes, geometry)
    if n_gt == 0:
        notes.append("the ground truth has no objects: every metric is undefined")
    stats, precision = _evaluate(gt_dict, results, iou_type)
    summary: dict[str, Any] = {name: _stat(float(x)) for name, x in zip(_STAT_NAMES, stats, strict=True)}
    ap, ap50, curves = _per_class(precision, gt.classes)
    return cls(
        **summary,
        per_class_ap=ap,
        per_class_ap50=ap50,
        pr_curves=curves,
        n_images=len(gt.samples),
        n_gt=n_gt,
        n_crowd=n_crowd,
        n_predictions=len(results),
        protocol=protocol,
        notes=notes,
    )
