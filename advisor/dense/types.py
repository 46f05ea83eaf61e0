"""Records of the dense tasks (object detection, instance and semantic segmentation): annotated images,
predictions, warnings.

Boxes are ``(N, 4)`` float arrays in absolute pixel ``x1, y1, x2, y2`` (corners, exclusive right/bottom edge as in
COCO's ``x, y, w, h`` → ``x, y, x + w, y + h``). Class ids are indices into `DenseDataset.classes` (0-based; no
background class in the list: detection has none, segmentation masks use the class index per pixel and
`DenseDataset.ignore_index` for "do not score"). Instance segmentation is detection plus one mask per box
(`DenseSample.masks`, an `InstanceMasks` stored as COCO polygons/RLE and decoded on demand).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from advisor.dense.instance_masks import InstanceMasks

DenseTaskName = Literal["detection", "instance-segmentation", "segmentation"]
DENSE_TASKS: tuple[str, ...] = ("detection", "instance-segmentation", "segmentation")
# tasks whose ground truth is boxes (instance segmentation adds a mask per box): box metrics and crop probes apply
BOX_TASKS: tuple[str, ...] = ("detection", "instance-segmentation")
TASK_METRIC: dict[str, str] = {
    "detection": "mAP",
    "instance-segmentation": "mask mAP",
    "segmentation": "mIoU",
}

# COCO object-size split (area in pixels of the box, as pycocotools uses for areaRng on boxes)
SMALL_AREA = 32.0**2
MEDIUM_AREA = 96.0**2


def empty_boxes() -> np.ndarray:
    """A ``(0, 4)`` float32 box array."""
    return np.zeros((0, 4), dtype=np.float32)


def empty_labels() -> np.ndarray:
    """A ``(0,)`` int64 label array."""
    return np.zeros((0,), dtype=np.int64)


@dataclass(frozen=True)
class DenseWarning:
    """A counted, named problem found while reading dense annotations (reported, never a traceback).

    Attributes:
        code: short category: ``degenerate-box``, ``out-of-image-box``, ``annotation-id-0``, ``category-0``,
            ``crowd``, ``mask-value-undeclared``, ``unlabelled-image``, ``missing-image``, ``unknown-class``,
            ``bad-annotation``, ``polygon-as-box``.
        count: how many times it occurred.
        message: one line saying what it is and what advisor did about it.
        examples: up to a few file names / ids where it occurred.
    """

    code: str
    count: int
    message: str
    examples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "code": self.code,
            "count": self.count,
            "message": self.message,
            "examples": list(self.examples),
        }


@dataclass(frozen=True, eq=False)
class DenseSample:
    """One annotated image.

    Attributes:
        id: stable id: the image path relative to the dataset root (POSIX).
        path: the image file, absolute.
        width, height: image size in pixels (from the annotation or the file header).
        boxes: ``(N, 4)`` float32 xyxy absolute pixels (detection; empty for segmentation-only data).
        labels: ``(N,)`` int64 class indices into `DenseDataset.classes`.
        crowd: ``(N,)`` bool, COCO ``iscrowd`` (ignored by matching, as COCO does); all False elsewhere.
        mask_path: segmentation: the index mask (``P``/``L`` PNG: pixel value = class index, `ignore_index` =
            not scored); None for detection.
        split: ``train``/``val``/``test`` when the dataset provides splits, else None.
        areas: ``(N,)`` float object areas from the annotation (COCO ``area``: the segment's area for polygons),
            used by the COCO small/medium/large split; None: the box area.
        source_id: the image's id in the source annotations (COCO ``image_id``), for predictions keyed by it;
            None when the format has none.
        masks: instance segmentation: one mask per box (same order), None for detection and semantic
            segmentation.
    """

    id: str
    path: Path
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=empty_boxes)
    labels: np.ndarray = field(default_factory=empty_labels)
    crowd: np.ndarray | None = None
    mask_path: Path | None = None
    split: str | None = None
    areas: np.ndarray | None = None
    source_id: int | str | None = None
    masks: InstanceMasks | None = None

    @property
    def n_objects(self) -> int:
        """Number of boxes."""
        return int(len(self.boxes))

    def crowd_mask(self) -> np.ndarray:
        """``(N,)`` bool crowd flags (all False when none were given)."""
        if self.crowd is None:
            return np.zeros(len(self.boxes), dtype=bool)
        return np.asarray(self.crowd, dtype=bool)


@dataclass
class DenseDataset:
    """An object-detection, instance-segmentation or semantic-segmentation dataset.

    Attributes:
        root: the dataset path given by the user.
        task: ``detection``, ``instance-segmentation`` (boxes, each with its mask) or ``segmentation``.
        format: the reader that read it: ``coco``, ``yolo``, ``voc``, ``csv``, ``hf-metadata``, ``mask-folder``,
            ``demo``.
        classes: class names (index = class id). Segmentation: index = mask value (may include ``background``).
        samples: the annotated images.
        ignore_index: segmentation: mask value not scored (255 by default, as VOC); None for detection.
        warnings: counted, named problems (see `DenseWarning`).
        skipped: ``(path, reason)`` of images left out.
        category_ids: COCO: the source category id of each class (index = class id), for predictions given in
            the source id space; None for other formats.
        mask_values: segmentation: raw mask value → class index where the stored values are not the indices
            (binary 0/255 masks: ``{0: 0, 255: 1}``); empty when the values are the class indices. Read masks
            with `read_mask`, which applies it.
    """

    root: Path
    task: str
    format: str
    classes: list[str]
    samples: list[DenseSample]
    ignore_index: int | None = None
    warnings: list[DenseWarning] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    category_ids: list[int] | None = None
    mask_values: dict[int, int] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def objects_per_class(self) -> dict[str, int]:
        """Detection: number of (non-crowd) boxes per class name, every class listed."""
        counts = dict.fromkeys(self.classes, 0)
        for s in self.samples:
            keep = ~s.crowd_mask()
            for c in s.labels[keep]:
                counts[self.classes[int(c)]] += 1
        return counts

    def read_mask(self, sample: DenseSample) -> np.ndarray:
        """Segmentation: the ``(H, W)`` int64 class-index mask of `sample`: palette indices as stored (never via
        RGB), `mask_values` applied (values it does not list become `ignore_index`)."""
        from PIL import Image

        if sample.mask_path is None:
            raise ValueError(f"sample {sample.id} has no mask")
        with Image.open(sample.mask_path) as im:
            keep = im.mode in ("P", "L", "I", "I;16")
            raw = np.asarray(im if keep else im.convert("L")).astype(np.int64)
        if not self.mask_values:
            return raw
        fill = 255 if self.ignore_index is None else self.ignore_index
        lut = np.full(max(int(raw.max()), *self.mask_values) + 1, fill, dtype=np.int64)
        for value, index in self.mask_values.items():
            lut[value] = index
        return lut[raw]

    def fingerprint(self) -> str:
        """A content fingerprint: ids, file sizes/mtimes and annotations (changes when any input changes)."""
        import hashlib

        h = hashlib.sha256()
        h.update(f"{self.task}|{self.format}|{self.classes}|{self.ignore_index}".encode())
        for s in sorted(self.samples, key=lambda x: x.id):
            st = s.path.stat() if s.path.exists() else None
            h.update(f"{s.id}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}|".encode())
            h.update(np.ascontiguousarray(s.boxes, dtype=np.float32).tobytes())
            h.update(np.ascontiguousarray(s.labels, dtype=np.int64).tobytes())
            if s.masks is not None:
                h.update(s.masks.digest())
            if s.mask_path is not None:
                mt = s.mask_path.stat() if s.mask_path.exists() else None
                h.update(
                    f"{s.mask_path.name}|{mt.st_size if mt else -1}|{mt.st_mtime_ns if mt else -1}".encode()
                )
        return h.hexdigest()[:16]


@dataclass
class Detections:
    """A detector's output on one image: boxes (xyxy absolute pixels), scores, class ids (model's label space)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(empty_boxes(), np.zeros((0,), dtype=np.float32), empty_labels())

    def __len__(self) -> int:
        return int(len(self.boxes))


@dataclass
class InstanceDetections(Detections):
    """An instance segmenter's output on one image: `Detections` plus one binary mask per box (at the image's
    size, stored as RLE)."""

    masks: InstanceMasks = field(default_factory=lambda: InstanceMasks(0, 0))

    @classmethod
    def empty(cls, height: int = 0, width: int = 0) -> InstanceDetections:
        """No detections (masks of an image of `height` x `width`)."""
        return cls(
            empty_boxes(), np.zeros((0,), dtype=np.float32), empty_labels(), InstanceMasks(height, width)
        )


def class_index(names: Sequence[str]) -> dict[str, int]:
    """Name → index (names normalised: lower case, ``_``/``-`` as spaces, stripped)."""
    return {normalise_class_name(n): i for i, n in enumerate(names)}


def normalise_class_name(name: str) -> str:
    """Lower case, ``_`` and ``-`` as spaces, runs of spaces collapsed."""
    return " ".join(str(name).replace("_", " ").replace("-", " ").lower().split())
