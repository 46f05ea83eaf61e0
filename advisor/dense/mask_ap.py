"""COCO mask AP (``iouType="segm"``) of predicted instance masks against instance-segmentation ground truth.

Ground truth is an instance-segmentation `DenseDataset` (each sample's `InstanceMasks`, one per box); predictions
are `InstanceDetections` per sample id (boxes, scores, labels and a binary mask per box at the image's size). Both
are written as COCO dicts the way `advisor.metrics.detection` writes boxes (image, category and annotation ids
re-indexed from 1, ``iscrowd`` honoured), with every mask as a compressed RLE at the image size, so any COCO
evaluator reads them (pycocotools too). Predicted masks carry no ``bbox``: their area, which places them in the
small/medium/large split, is the mask's (with a ``bbox`` pycocotools would take the box's). The ground truth's area
is the annotation's (COCO: the segment's), else the mask's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from advisor.dense.instance_masks import InstanceMasks, box_polygon
from advisor.dense.types import (
    MEDIUM_AREA,
    SMALL_AREA,
    DenseDataset,
    DenseSample,
    Detections,
    InstanceDetections,
)
from advisor.errors import UsageError
from advisor.metrics.detection import (
    MAX_DETS,
    AnnotationFields,
    DetectionMetrics,
    Geometry,
    coco_metrics,
)

log = logging.getLogger(__name__)

__all__ = ["MaskMetrics", "mask_geometry", "mask_metrics"]


@dataclass
class MaskMetrics(DetectionMetrics):
    """COCO mask metrics: the fields of `DetectionMetrics` (mAP, AP50/75, AP and AR by size, per-class AP, PR
    curves), each computed on mask IoU instead of box IoU."""

    def to_dict(self, *, curves: bool = True) -> dict[str, Any]:
        """JSON-able form (``curves=False`` leaves the PR curves out)."""
        return super().to_dict(curves=curves) | {"task": "instance-segmentation", "iou_type": "segm"}


def _gt_masks(s: DenseSample, notes: list[str]) -> InstanceMasks:
    """The sample's instance masks; its boxes as rectangles when it has none (noted)."""
    if s.masks is not None and len(s.masks) == s.n_objects:
        return s.masks
    if s.n_objects:
        notes.append(f"{s.id}: ground truth without instance masks, its boxes used as the masks")
    return InstanceMasks(s.height, s.width, tuple(box_polygon(b) for b in s.boxes))


def _mask_fields(notes: list[str]) -> Callable[[DenseSample], list[dict[str, Any]]]:
    """Per object of a sample: its RLE, and its mask's area where the annotation states none."""

    def fields(s: DenseSample) -> list[dict[str, Any]]:
        masks = _gt_masks(s, notes)
        areas = masks.areas() if s.areas is None else np.asarray(s.areas, dtype=np.float64)
        return [
            {"segmentation": rle, "area": float(area)} for rle, area in zip(masks.rles(), areas, strict=True)
        ]

    return fields


def _pred_masks(sid: str, det: Detections, sample: DenseSample) -> InstanceMasks:
    """The masks of one prediction, checked against its image.

    Raises:
        UsageError: no masks, or masks of another size or count.
    """
    masks = det.masks if isinstance(det, InstanceDetections) else None
    if masks is None:
        raise UsageError(
            f"predictions of {sid} carry no instance masks",
            hint="mask AP needs InstanceDetections (boxes, scores, labels and a mask per box)",
        )
    if (masks.height, masks.width) != (sample.height, sample.width) or len(masks) != len(det):
        raise UsageError(
            f"predictions of {sid}: {len(masks)} masks of {masks.width}x{masks.height} for {len(det)} boxes on a "
            f"{sample.width}x{sample.height} image",
            hint="give one mask per box, at the image's size",
        )
    return masks


def _masks(sid: str, det: Detections, sample: DenseSample) -> list[dict[str, Any]]:
    return [{"segmentation": rle} for rle in _pred_masks(sid, det, sample).rles()]


def mask_geometry(notes: list[str]) -> tuple[AnnotationFields, Geometry]:
    """How mask AP writes the COCO inputs (`advisor.metrics.detection.coco_inputs` with ``iou_type="segm"``):
    per ground-truth object its RLE and mask area, per prediction its RLE (`notes` collects the ground-truth
    samples scored with their boxes as masks)."""
    return _mask_fields(notes), _masks


def _protocol(version: str) -> str:
    return (
        f"COCO segm (faster-coco-eval {version}): mask IoU on RLE masks at the image size, AP over IoU "
        f".50:.05:.95, 101-point interpolated precision, maxDets {'/'.join(map(str, MAX_DETS))}, sizes small < "
        f"{int(SMALL_AREA)} <= medium < {int(MEDIUM_AREA)} <= large px² by mask area; iscrowd honoured; image, "
        "category and annotation ids re-indexed from 1"
    )


def mask_metrics(
    gt: DenseDataset,
    preds: Mapping[str, Detections],
    *,
    class_map: Mapping[int, int | None] | None = None,
) -> MaskMetrics:
    """COCO mask metrics (``iouType="segm"``) of `preds` against `gt`, by faster-coco-eval.

    Args:
        gt: instance-segmentation ground truth (samples with `InstanceMasks`; a sample without masks is scored
            with its boxes as rectangles, noted).
        preds: sample id -> `InstanceDetections`; images without an entry have no predictions.
        class_map: prediction label -> ground-truth class index (None drops it); default: labels are already
            ground-truth class indices.

    Returns:
        The metrics (mask AP, AR, per class, PR curves), with the protocol used and notes.

    Raises:
        UsageError: faster-coco-eval missing, ground truth that is not boxes, or predictions without masks.
    """
    try:
        import faster_coco_eval
    except ImportError:
        raise UsageError(
            "COCO mask AP needs faster-coco-eval, which is not installed",
            hint="pip install 'faster-coco-eval==1.8.0' (or the advisor[dense] extra)",
        ) from None
    if gt.task not in ("detection", "instance-segmentation"):
        raise UsageError(
            f"{gt.root}: ground truth is a {gt.task} dataset, not instance segmentation",
            hint="mask AP needs objects with instance masks (COCO segmentation, YOLO-seg polygons)",
        )
    notes: list[str] = []
    fields, geometry = mask_geometry(notes)
    return coco_metrics(
        gt,
        preds,
        class_map,
        protocol=_protocol(faster_coco_eval.__version__),
        iou_type="segm",
        fields=fields,
        geometry=geometry,
        cls=MaskMetrics,
        notes=notes,
    )
