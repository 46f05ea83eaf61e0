"""Semantic-segmentation metrics from one confusion matrix accumulated over every image (not a per-image average).

mIoU is the mean IoU over the classes present in the ground truth or the predictions of the evaluated images
(a class absent from both has no IoU: 0/0); pixels whose target is `ignore_index` are not scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advisor.dense.types import DenseDataset, DenseSample
from advisor.errors import DatasetError, UsageError

__all__ = ["SegmentationConfusion", "SegmentationMetrics", "read_index_mask", "segmentation_metrics"]


@dataclass
class SegmentationMetrics:
    """Metrics of an accumulated confusion matrix.

    Attributes:
        miou: mean IoU over `present_classes`.
        per_class_iou: class name -> IoU = TP / (TP + FP + FN); None for a class in neither ground truth nor
            predictions.
        dice: class name -> Dice (F1) = 2TP / (2TP + FP + FN); None as for IoU.
        mean_dice: mean Dice over `present_classes`.
        pixel_accuracy: correctly labelled scored pixels / scored pixels.
        mean_accuracy: mean over the classes present in the ground truth of their pixel recall.
        fw_iou: frequency-weighted IoU (each class's IoU weighted by its share of ground-truth pixels).
        present_classes: the classes mIoU averages over.
        n_images, n_pixels: images and scored pixels.
        n_ignored: pixels skipped because their target is `ignore_index`.
        n_unpredicted: scored pixels whose prediction is not a class index (out of range, or no prediction file):
            counted as wrong.
        n_target_undeclared: pixels whose target is neither a class index nor `ignore_index` (not scored).
        confusion: ``(C, C)`` counts, rows = ground truth, columns = prediction.
        protocol: one line saying how the numbers were computed.
        notes: counted, named remarks.
    """

    miou: float | None
    per_class_iou: dict[str, float | None]
    dice: dict[str, float | None]
    mean_dice: float | None
    pixel_accuracy: float | None
    mean_accuracy: float | None
    fw_iou: float | None
    present_classes: list[str]
    n_images: int
    n_pixels: int
    n_ignored: int
    n_unpredicted: int
    n_target_undeclared: int
    confusion: np.ndarray
    protocol: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "task": "segmentation",
            "miou": self.miou,
            "mean_dice": self.mean_dice,
            "pixel_accuracy": self.pixel_accuracy,
            "mean_accuracy": self.mean_accuracy,
            "fw_iou": self.fw_iou,
            "per_class_iou": dict(self.per_class_iou),
            "dice": dict(self.dice),
            "present_classes": list(self.present_classes),
            "n_images": self.n_images,
            "n_pixels": self.n_pixels,
            "n_ignored": self.n_ignored,
            "n_unpredicted": self.n_unpredicted,
            "n_target_undeclared": self.n_target_undeclared,
            "confusion": self.confusion.tolist(),
            "protocol": self.protocol,
            "notes": list(self.notes),
        }


class SegmentationConfusion:
    """A confusion matrix accumulated image by image.

    Args:
        num_classes: number of classes (valid values 0..num_classes-1).
        ignore_index: target value that is not scored (None: every value is scored).
        class_names: names for the result (default ``"0"``, ``"1"``, ...).
    """

    def __init__(
        self, num_classes: int, ignore_index: int | None = 255, class_names: list[str] | None = None
    ) -> None:
        if num_classes < 1:
            raise ValueError("num_classes must be >= 1")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = (
            list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        )
        # the last column counts pixels predicted as no class (out of range / missing prediction)
        self.matrix = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
        self.n_images = 0
        self.n_ignored = 0
        self.n_target_undeclared = 0

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one image: `pred` and `target` are ``(H, W)`` integer class-index maps of the same shape.

        Raises:
            ValueError: the shapes differ.
        """
        pred = np.asarray(pred)
        target = np.asarray(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {pred.shape} != target shape {target.shape}")
        t = target.reshape(-1).astype(np.int64)
        p = pred.reshape(-1).astype(np.int64)
        scored = np.ones(t.shape, dtype=bool)
        if self.ignore_index is not None:
            ignored = t == self.ignore_index
            self.n_ignored += int(ignored.sum())
            scored &= ~ignored
        undeclared = scored & ((t < 0) | (t >= self.num_classes))
        self.n_target_undeclared += int(undeclared.sum())
        scored &= ~undeclared
        t, p = t[scored], p[scored]
        p = np.where((p >= 0) & (p < self.num_classes), p, self.num_classes)
        k = self.num_classes + 1
        self.matrix += np.bincount(t * k + p, minlength=self.num_classes * k).reshape(self.num_classes, k)
        self.n_images += 1

    def update_unpredicted(self, target: np.ndarray) -> None:
        """Add an image that has no prediction: every scored pixel counts as wrong."""
        self.update(np.full(np.shape(target), -1, dtype=np.int64), target)

    def result(self, *, notes: list[str] | None = None) -> SegmentationMetrics:
        """The metrics of everything added so far."""
        m = self.matrix.astype(np.float64)
        conf = m[:, : self.num_classes]
        tp = np.diag(conf)
        gt_pixels = m.sum(axis=1)  # includes pixels predicted as no class
        pred_pixels = conf.sum(axis=0)
        union = gt_pixels + pred_pixels - tp
        present = union > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(present, tp / union, np.nan)
            dice = np.where(present, 2 * tp / (gt_pixels + pred_pixels), np.nan)
            recall = np.where(gt_pixels > 0, tp / gt_pixels, np.nan)
        total = float(gt_pixels.sum())
        names = self.class_names
        return SegmentationMetrics(
            miou=_mean(iou[present]),
            per_class_iou={n: _num(v) for n, v in zip(names, iou, strict=True)},
            dice={n: _num(v) for n, v in zip(names, dice, strict=True)},
            mean_dice=_mean(dice[present]),
            pixel_accuracy=float(tp.sum() / total) if total else None,
            mean_accuracy=_mean(recall[gt_pixels > 0]),
            fw_iou=float(np.sum((gt_pixels / total)[gt_pixels > 0] * iou[gt_pixels > 0])) if total else None,
            present_classes=[n for n, p in zip(names, present, strict=True) if p],
            n_images=self.n_images,
            n_pixels=int(total),
            n_ignored=self.n_ignored,
            n_unpredicted=int(self.matrix[:, -1].sum()),
            n_target_undeclared=self.n_target_undeclared,
            confusion=self.matrix[:, : self.num_classes].copy(),
            protocol=self.protocol(int(present.sum())),
            notes=list(notes or []),
        )

    def protocol(self, n_present: int) -> str:
        """One line: how the metrics are computed."""
        ignore = "none" if self.ignore_index is None else str(self.ignore_index)
        return (
            f"confusion matrix accumulated over {self.n_images} image(s) (not a per-image average); "
            f"mIoU = mean IoU over the {n_present} of {self.num_classes} classes present in ground truth or "
            f"predictions; ignore_index {ignore} not scored; pixels predicted as no class count as wrong"
        )


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if values.size else None


def read_index_mask(path: Path) -> np.ndarray:
    """An index mask (``P`` or ``L`` PNG: pixel value = class index) as an ``(H, W)`` int64 array.

    A palette image keeps its indices (it is never converted to RGB, which would destroy them).

    Raises:
        DatasetError: the file is not a single-channel image (named).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "I", "I;16", "1"):
                raise DatasetError(
                    f"{path}: a {im.mode} image is not an index mask",
                    hint="save masks as P or L PNGs whose pixel values are class indices",
                )
            return np.asarray(im, dtype=np.int64)
    except (OSError, UnidentifiedImageError) as e:
        raise DatasetError(f"{path}: not readable as an image ({e.__class__.__name__})") from None


def segmentation_metrics(
    gt: DenseDataset,
    preds: Mapping[str, np.ndarray | Path],
    *,
    ignore_index: int | None = None,
) -> SegmentationMetrics:
    """Accumulated-confusion-matrix metrics of predicted index masks against a segmentation dataset.

    Args:
        gt: segmentation ground truth (every sample with a `mask_path`).
        preds: sample id -> predicted ``(H, W)`` class-index map or index-mask file, at the image's own size.
            A sample without a prediction is scored with every pixel wrong (and noted).
        ignore_index: target value not scored (default: the dataset's, else 255).

    Raises:
        UsageError: `gt` is not a segmentation dataset.
        DatasetError: a mask is unreadable, or a prediction's size differs from its ground truth (named).
    """
    if gt.task != "segmentation":
        raise UsageError(f"{gt.root}: ground truth is a {gt.task} dataset, not segmentation")
    ignore = (
        ignore_index
        if ignore_index is not None
        else (gt.ignore_index if gt.ignore_index is not None else 255)
    )
    conf = SegmentationConfusion(gt.num_classes, ignore, list(gt.classes))
    unpredicted: list[str] = []
    unlabelled = remapped = 0
    for s in gt.samples:
        if s.mask_path is None:
            unlabelled += 1
            continue
        target = _read_target(gt, s)
        pred = preds.get(s.id)
        if pred is None:
            unpredicted.append(s.id)
            conf.update_unpredicted(target)
            continue
        arr = read_index_mask(pred) if isinstance(pred, Path) else np.asarray(pred)
        if isinstance(pred, Path) and gt.mask_values and _stored_like_gt(arr, gt.mask_values):
            arr = _apply_values(arr, gt.mask_values)
            remapped += 1
        if arr.shape != target.shape:
            where = pred if isinstance(pred, Path) else s.id
            raise DatasetError(
                f"{where}: predicted mask is {arr.shape[1::-1]} (w, h), ground truth {s.mask_path.name} is "
                f"{target.shape[1::-1]}",
                hint="predict at the image's own size (resize with nearest neighbour)",
            )
        conf.update(arr, target)
    notes = []
    if unpredicted:
        notes.append(
            f"{len(unpredicted)} image(s) without a predicted mask, every pixel counted wrong "
            f"(e.g. {', '.join(unpredicted[:3])})"
        )
    if remapped:
        values = ", ".join(f"{k} -> {v}" for k, v in sorted(gt.mask_values.items()))
        notes.append(
            f"{remapped} predicted mask(s) stored like the ground truth, values mapped as it is ({values})"
        )
    if unlabelled:
        notes.append(f"{unlabelled} image(s) without a ground-truth mask, not scored")
    if conf.n_target_undeclared:
        notes.append(
            f"{conf.n_target_undeclared} ground-truth pixel(s) with a value that is no class, not scored"
        )
    return conf.result(notes=notes)


def _read_target(gt: DenseDataset, sample: DenseSample) -> np.ndarray:
    try:
        return gt.read_mask(sample)
    except (OSError, ValueError) as e:
        raise DatasetError(
            f"{sample.mask_path}: not readable as an index mask ({e.__class__.__name__})"
        ) from None


def _stored_like_gt(mask: np.ndarray, mask_values: dict[int, int]) -> bool:
    """A predicted mask whose values are all raw ground-truth values (e.g. 0/255 binary masks)."""
    values = np.unique(mask)
    return (
        bool(values.size)
        and set(values.tolist()) <= set(mask_values)
        and int(values.max()) >= len(mask_values)
    )


def _apply_values(mask: np.ndarray, mask_values: dict[int, int]) -> np.ndarray:
    lut = np.full(max(int(mask.max()), *mask_values) + 1, -1, dtype=np.int64)
    for value, index in mask_values.items():
        lut[value] = index
    return lut[mask]
