"""`advisor metrics detection|segmentation GT PRED`: read a ground-truth dataset and a prediction file/folder,
compute the metrics and say which protocol was used (the library side of the command)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.dense.mask_ap import mask_metrics
from advisor.dense.types import DenseDataset
from advisor.errors import DatasetError, UsageError
from advisor.metrics.detection import DetectionMetrics, detection_metrics
from advisor.metrics.predictions import read_coco_results, read_detection_predictions, read_mask_predictions
from advisor.metrics.segmentation import SegmentationMetrics, segmentation_metrics

log = logging.getLogger(__name__)

__all__ = ["METRIC_TASKS", "MetricsReport", "evaluate_predictions"]

METRIC_TASKS = ("detection", "instance-segmentation", "segmentation")


@dataclass
class MetricsReport:
    """The metrics of one prediction set against one ground truth, and where both came from.

    Attributes:
        task: ``detection``, ``instance-segmentation`` or ``segmentation``.
        ground_truth, predictions: the paths given.
        gt_format, prediction_format: the formats they were read as.
        n_images: ground-truth images evaluated; n_matched: those with predictions.
        metrics: the `DetectionMetrics` or `SegmentationMetrics`.
        notes: what was ignored or assumed while reading (counted, named), then the metrics' own notes.
        gt_warnings: the ground truth reader's counted warnings (``code: count``).
    """

    task: str
    ground_truth: str
    predictions: str
    gt_format: str
    prediction_format: str
    n_images: int
    n_matched: int
    metrics: DetectionMetrics | SegmentationMetrics
    notes: list[str] = field(default_factory=list)
    gt_warnings: dict[str, int] = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        """The metrics' protocol line."""
        return self.metrics.protocol

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``metrics`` holds the full metrics, PR curves included)."""
        return {
            "task": self.task,
            "ground_truth": {"path": self.ground_truth, "format": self.gt_format, "images": self.n_images},
            "predictions": {
                "path": self.predictions,
                "format": self.prediction_format,
                "images_matched": self.n_matched,
            },
            "protocol": self.protocol,
            "metrics": self.metrics.to_dict(),
            "notes": list(self.notes),
            "gt_warnings": dict(self.gt_warnings),
        }


def _load_gt(
    path: Path, task: str, *, ignore_index: int | None, split: str | None, fmt: str | None
) -> DenseDataset:
    from advisor.dense.readers import load_dense

    kwargs: dict[str, Any] = {"task": task, "format": fmt, "split": split}
    if ignore_index is not None:
        kwargs["ignore_index"] = ignore_index
    ds = load_dense(path, **kwargs)
    if not ds.samples:
        raise DatasetError(
            f"{path}: no annotated images to evaluate against", hint="check the ground-truth path"
        )
    return ds


def _no_match(gt: Path, pred: Path, notes: list[str]) -> DatasetError:
    detail = f" ({notes[0]})" if notes else ""
    return DatasetError(
        f"{pred}: no prediction matches an image of {gt}{detail}",
        hint="name predictions by the ground truth's image file names (or its COCO image ids)",
    )


def evaluate_predictions(
    task: str,
    ground_truth: str | Path,
    predictions: str | Path,
    *,
    ignore_index: int | None = None,
    split: str | None = None,
    gt_format: str | None = None,
) -> MetricsReport:
    """Metrics of a prediction file/folder against a ground-truth dataset (`advisor metrics`, `advisor.metrics`).

    Args:
        task: ``detection`` (COCO box mAP/AR by faster-coco-eval, ids re-indexed from 1, crowd honoured),
            ``instance-segmentation`` (COCO mask mAP/AR, ``iouType="segm"``) or ``segmentation`` (mIoU, Dice,
            pixel accuracy from one accumulated confusion matrix).
        ground_truth: any dense dataset `advisor.dense.readers.load_dense` reads (COCO, YOLO, VOC, box CSV,
            metadata.jsonl, image + mask folders).
        predictions: detection: a COCO results JSON or a YOLO txt folder (``class cx cy w h conf``); instance
            segmentation: a COCO segm results JSON (``segmentation`` as RLE or polygons, ``bbox`` optional);
            segmentation: a folder of index-mask PNGs named like the images.
        ignore_index: segmentation: the mask value not scored (default: the dataset's, 255).
        split: evaluate only this split of the ground truth.
        gt_format: force the ground truth's format (default: detected).

    Raises:
        UsageError: an unknown task.
        DatasetError: unreadable ground truth or predictions (named), or no prediction matching any image.
    """
    if task not in METRIC_TASKS:
        raise UsageError(
            f"unknown metrics task {task!r}", hint="use detection, instance-segmentation or segmentation"
        )
    gt_path, pred_path = Path(ground_truth).expanduser(), Path(predictions).expanduser()
    if not pred_path.exists():
        raise DatasetError(f"predictions not found: {pred_path}", hint="check the path")
    ds = _load_gt(gt_path, task, ignore_index=ignore_index, split=split, fmt=gt_format)
    result: DetectionMetrics | SegmentationMetrics
    if task == "instance-segmentation":
        if not (pred_path.is_file() and pred_path.suffix.lower() == ".json"):
            raise DatasetError(
                f"{pred_path}: mask AP reads a COCO segm results .json",
                hint="give a JSON list of {image_id, category_id, segmentation, score}",
            )
        dp = read_coco_results(pred_path, ds, masks=True)
        if not dp.detections and any(len(s.boxes) for s in ds.samples):
            raise _no_match(gt_path, pred_path, dp.notes)
        notes, fmt, matched = dp.notes, dp.format, len(dp.detections)
        result = mask_metrics(ds, dp.detections)
    elif task == "detection":
        dp = read_detection_predictions(pred_path, ds)
        if not dp.detections and any(len(s.boxes) for s in ds.samples):
            raise _no_match(gt_path, pred_path, dp.notes)
        notes, fmt, matched = dp.notes, dp.format, len(dp.detections)
        result = detection_metrics(ds, dp.detections)
    else:
        mp = read_mask_predictions(pred_path, ds)
        if not mp.masks:
            raise _no_match(gt_path, pred_path, mp.notes)
        notes, fmt, matched = mp.notes, mp.format, len(mp.masks)
        result = segmentation_metrics(ds, dict(mp.masks), ignore_index=ignore_index)
    log.info("metrics %s: %s", task, result.protocol)
    return MetricsReport(
        task=task,
        ground_truth=str(gt_path),
        predictions=str(pred_path),
        gt_format=ds.format,
        prediction_format=fmt,
        n_images=len(ds.samples),
        n_matched=matched,
        metrics=result,
        notes=notes + result.notes,
        gt_warnings={w.code: w.count for w in ds.warnings},
    )
