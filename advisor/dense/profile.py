"""Profile of a detection / segmentation dataset (`advisor data profile` on dense data).

Detection: objects per class (crowd boxes apart), images per class, the COCO object-size split (small < 32², medium
< 96², large; on the annotation ``area`` where the format gives one, else the box area, as pycocotools does),
objects per image, box sizes. Segmentation: pixel share and images per class on an evenly spread sample of the
masks (at most `MAX_PROFILE_MASKS` decoded). Both: image sizes, splits, the reader's counted warnings, skips.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from advisor.dense.types import BOX_TASKS, MEDIUM_AREA, SMALL_AREA, DenseDataset, DenseSample

MAX_PROFILE_MASKS = 64
MAX_LISTED_SKIPS = 100
SIZE_BINS = ("small", "medium", "large")


def _stats(values: Sequence[float] | np.ndarray, digits: int = 3) -> dict[str, float] | None:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return None

    def r(x: float) -> float:
        return round(float(x), digits)

    return {
        "min": r(a.min()), "mean": r(a.mean()), "median": r(np.median(a)), "p95": r(np.percentile(a, 95)),
        "max": r(a.max()),
    }  # fmt: skip


def size_bin(area: float) -> str:
    """COCO's object-size bin of an area in pixels: ``small``, ``medium`` or ``large``."""
    return "small" if area < SMALL_AREA else "medium" if area < MEDIUM_AREA else "large"


def _areas(s: DenseSample) -> np.ndarray:
    if s.areas is not None and len(s.areas) == len(s.boxes):
        return np.asarray(s.areas, dtype=np.float64)
    b = s.boxes.astype(np.float64)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) if len(b) else np.zeros(0)


def _image_sizes(ds: DenseDataset) -> dict[str, Any]:
    sizes = Counter((s.width, s.height) for s in ds.samples)
    return {
        "width_px": _stats([s.width for s in ds.samples], 1),
        "height_px": _stats([s.height for s in ds.samples], 1),
        "distinct": len(sizes),
        "most_common": [{"width": w, "height": h, "images": n} for (w, h), n in sizes.most_common(5)],
    }


def _detection(ds: DenseDataset) -> dict[str, Any]:
    names = ds.classes
    per_class = dict.fromkeys(names, 0)
    images_per_class = dict.fromkeys(names, 0)
    split = {n: dict.fromkeys(SIZE_BINS, 0) for n in names}
    per_image, widths, heights, rel_area = [], [], [], []
    n_crowd = 0
    for s in ds.samples:
        keep = ~s.crowd_mask()
        n_crowd += int((~keep).sum())
        labels, areas, boxes = s.labels[keep], _areas(s)[keep], s.boxes[keep].astype(np.float64)
        per_image.append(len(labels))
        for c in set(labels.tolist()):
            images_per_class[names[c]] += 1
        for c, a in zip(labels.tolist(), areas.tolist(), strict=True):
            per_class[names[c]] += 1
            split[names[c]][size_bin(a)] += 1
        if len(boxes):
            widths += (boxes[:, 2] - boxes[:, 0]).tolist()
            heights += (boxes[:, 3] - boxes[:, 1]).tolist()
            rel_area += (areas / max(s.width * s.height, 1)).tolist()
    totals = {b: sum(v[b] for v in split.values()) for b in SIZE_BINS}
    present = [n for n in per_class.values() if n > 0]
    return {
        "objects": sum(per_class.values()),
        "crowd_boxes": n_crowd,
        "objects_per_class": per_class,
        "images_per_class": images_per_class,
        "classes_without_objects": [c for c, n in per_class.items() if n == 0],
        "imbalance_ratio": round(max(present) / min(present), 3) if present else None,
        "size_split": totals,
        "size_split_per_class": split,
        "objects_per_image": _stats(per_image, 2),
        "images_without_objects": sum(1 for n in per_image if n == 0),
        "box_width_px": _stats(widths, 1),
        "box_height_px": _stats(heights, 1),
        "box_area_share": _stats(rel_area, 4),
    }


def _mask_sample(ds: DenseDataset, max_masks: int) -> list[DenseSample]:
    with_masks = [s for s in ds.samples if s.mask_path is not None]
    if len(with_masks) <= max_masks:
        return with_masks
    return [with_masks[int(i)] for i in np.linspace(0, len(with_masks) - 1, max_masks)]


def _segmentation(ds: DenseDataset, max_masks: int) -> dict[str, Any]:
    k = ds.num_classes
    pixels = np.zeros(k, dtype=np.int64)
    images = np.zeros(k, dtype=np.int64)
    ignored = undeclared = total = 0
    sample = _mask_sample(ds, max_masks)
    for s in sample:
        m = ds.read_mask(s).ravel()
        total += m.size
        is_ignored = m == ds.ignore_index if ds.ignore_index is not None else np.zeros(m.size, dtype=bool)
        ignored += int(is_ignored.sum())
        valid = m[~is_ignored]
        counts = np.bincount(valid[(valid >= 0) & (valid < k)], minlength=k)[:k]
        undeclared += int(valid.size - counts.sum())
        pixels += counts
        images += counts > 0
    scored = max(int(pixels.sum()), 1)
    return {
        "ignore_index": ds.ignore_index,
        "mask_values": {str(v): i for v, i in ds.mask_values.items()},
        "masks_sampled": len(sample),
        "pixel_share": {c: round(float(pixels[i]) / scored, 5) for i, c in enumerate(ds.classes)},
        "images_per_class": {c: int(images[i]) for i, c in enumerate(ds.classes)},
        "ignored_pixel_share": round(ignored / max(total, 1), 5),
        "undeclared_pixel_share": round(undeclared / max(total, 1), 5),
        "classes_absent_in_sample": [c for i, c in enumerate(ds.classes) if images[i] == 0],
    }


def profile_dense(ds: DenseDataset, *, max_masks: int = MAX_PROFILE_MASKS) -> dict[str, Any]:
    """A JSON-able profile of `ds` (see the module docstring for what it holds).

    Args:
        ds: the dataset (`advisor.dense.readers.load_dense`).
        max_masks: segmentation: at most this many masks are decoded for the pixel statistics.

    Returns:
        ``root``, ``task``, ``format``, ``fingerprint``, ``images``, ``classes``, ``class_names``, ``splits``,
        ``image_sizes``, ``warnings`` (``code``/``count``/``message``/``examples``), ``n_skipped``, ``skipped``;
        detection adds ``objects``, ``objects_per_class``, ``size_split``, ... ; segmentation ``pixel_share``, ...
    """
    splits = Counter(s.split for s in ds.samples if s.split)
    out: dict[str, Any] = {
        "root": str(ds.root),
        "task": ds.task,
        "format": ds.format,
        "fingerprint": ds.fingerprint(),
        "images": len(ds.samples),
        "classes": ds.num_classes,
        "class_names": list(ds.classes),
        "splits": {k: splits[k] for k in sorted(splits)},
        "image_sizes": _image_sizes(ds),
    }
    out.update(_detection(ds) if ds.task in BOX_TASKS else _segmentation(ds, max_masks))
    out["warnings"] = [w.to_dict() for w in ds.warnings]
    out["n_skipped"] = len(ds.skipped)
    out["skipped"] = [{"path": p, "reason": r} for p, r in ds.skipped[:MAX_LISTED_SKIPS]]
    return out


def profile_if_dense(
    path: str | Path, *, task: str | None = None, modality: str | None = None, split: str | None = None,
    ignore_index: int | None = 255,
) -> dict[str, Any] | None:  # fmt: skip
    """The dense profile of `path` when it holds detection/segmentation data (or `task` names one), else None.

    ``task="classification"`` or a non-image `modality` always gives None (the classification profile applies).

    Raises:
        DatasetError: `task` is dense but the data cannot be read as it.
    """
    from advisor.dense.readers import detect_dense, load_dense
    from advisor.dense.types import DENSE_TASKS

    if task not in (None, *DENSE_TASKS) or modality not in (None, "image"):
        return None
    if task is None and detect_dense(path) is None:
        return None
    return profile_dense(load_dense(path, task=task, split=split, ignore_index=ignore_index))
