"""Detection and segmentation metrics with well-kept libraries: COCO box AP/AR by faster-coco-eval (ids
re-indexed from 1, crowd honoured), mIoU/Dice/pixel accuracy from one accumulated confusion matrix, and the
readers of prediction files (COCO results JSON, YOLO txt, index-mask folders) for `advisor metrics`."""

from __future__ import annotations

from advisor.metrics.detection import DetectionMetrics, coco_inputs, detection_metrics
from advisor.metrics.segmentation import (
    SegmentationConfusion,
    SegmentationMetrics,
    read_index_mask,
    segmentation_metrics,
)

__all__ = [
    "DetectionMetrics",
    "SegmentationConfusion",
    "SegmentationMetrics",
    "coco_inputs",
    "detection_metrics",
    "read_index_mask",
    "segmentation_metrics",
]
