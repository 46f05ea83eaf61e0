"""The ``detection``, ``instance-segmentation`` and ``segmentation`` tasks: annotated images ranked by the dense
ladder (`advisor.dense`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from advisor.recommend.config import RunConfig


class DenseTask:
    """A dense task: its data is recognised by `advisor.dense.readers.detect_dense`, its run is the dense pipeline.

    Args:
        name: ``detection``, ``instance-segmentation`` or ``segmentation``.
        summary: one line for listings.
    """

    def __init__(self, name: str, summary: str) -> None:
        self.name = name
        self.summary = summary

    def detect(self, path: str | Path) -> bool:
        """Whether `path` holds dense annotations of this task (COCO, YOLO, VOC, box CSV, HF metadata, masks)."""
        from advisor.dense.readers import detect_dense

        found = detect_dense(path)
        return found is not None and found[0] == self.name

    def load_dataset(self, cfg: RunConfig) -> Any:
        """The run's dataset read as this task (`advisor.dense.pipeline.load_run_dataset`)."""
        from advisor.dense.pipeline import load_run_dataset

        return load_run_dataset(cfg, self.name)

    def run(
        self, cfg: RunConfig, *, progress_fn: Any = None, catalog: Any = None, executor: Any = None
    ) -> Any:
        """`advisor.dense.pipeline.run_dense` (the executor is not used yet: dense rows run in this process)."""
        from advisor.dense.pipeline import run_dense

        return run_dense(cfg, progress_fn=progress_fn, catalog=catalog)

    def report_sections(self) -> tuple[str, ...]:
        """The sections of `advisor.report.dense` that dense results fill."""
        return (
            "Verdict",
            "Data",
            "Zero-shot (measured metric on your sample)",
            "Frozen-feature proxies (a proxy, not the task metric)",
            "Per-class figures of the zero-shot models",
            "Other rows",
            "Plots",
            "What each rung measured",
            "Notes",
        )


DETECTION = DenseTask(
    "detection",
    "boxes per image (COCO, YOLO, VOC, box CSV, HF metadata): zero-shot mAP, crop-probe and ROI-probe proxies",
)
INSTANCE_SEGMENTATION = DenseTask(
    "instance-segmentation",
    "a box and a mask per object (COCO segmentation polygons/RLE, YOLO-seg): zero-shot mask AP and box AP, "
    "crop-probe and ROI-probe proxies",
)
SEGMENTATION = DenseTask(
    "segmentation",
    "a class index per pixel (mask folders, VOC SegmentationClass): zero-shot mIoU, pixel probes",
)
