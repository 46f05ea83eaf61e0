"""Read detection / segmentation datasets: find the format (`detect_dense`) and read it (`load_dense`).

Formats (``DenseDataset.format``): ``coco`` (COCO instances JSON), ``yolo`` (txt labels + ``data.yaml``), ``voc``
(Pascal VOC XML), ``csv`` (one row per box), ``hf-metadata`` (imagefolder ``metadata.jsonl`` with ``objects``) —
detection; COCO and YOLO whose annotations mostly carry masks (COCO ``segmentation``, YOLO-seg polygons) —
instance segmentation (``--task detection`` reads their boxes); ``mask-folder`` (images + index PNG masks, VOC
``SegmentationClass`` included) — segmentation. The
readers are in ``readers_coco``, ``readers_voc``, ``readers_yolo`` and ``readers_masks``; none decodes an image
(sizes come from the annotations or the file headers). Problems are counted, named `DenseWarning` records on the
dataset; input that cannot be read at all is a one-line `DatasetError`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from advisor.dense.readers_coco import (
    coco_files,
    coco_task,
    hf_metadata_files,
    looks_like_coco,
    looks_like_hf_objects,
)
from advisor.dense.readers_common import DENSE_READERS
from advisor.dense.readers_masks import mask_pairs
from advisor.dense.readers_voc import csv_columns, is_voc, read_csv_header
from advisor.dense.readers_yolo import yolo_pairs, yolo_task
from advisor.dense.types import DENSE_TASKS, DenseDataset, DenseSample, DenseWarning
from advisor.errors import DatasetError, UsageError

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = tuple(DENSE_READERS)  # the registered readers (see `readers_common.dense_reader`)
_MASK_FORMATS = ("coco", "yolo")  # the formats that carry instance masks
_MAX_DESCEND = 3


def _csv_file(path: Path) -> Path | None:
    if path.is_file():
        return (
            path if path.suffix.lower() in (".csv", ".tsv") and csv_columns(read_csv_header(path)) else None
        )
    if not path.is_dir():
        return None
    tables = sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".tsv") and p.is_file())
    boxes = [t for t in tables if csv_columns(read_csv_header(t))]
    return boxes[0] if len(boxes) == 1 else None


def _detect_here(path: Path) -> tuple[str, str] | None:
    """The (task, format) of `path` itself, without descending."""
    if coco := [f for f in coco_files(path) if looks_like_coco(f)]:
        return (coco_task(coco), "coco")
    if path.is_file():
        if _csv_file(path):
            return ("detection", "csv")
        pairs = yolo_pairs(path) if path.suffix.lower() in (".yaml", ".yml") else []
        return (yolo_task(pairs), "yolo") if pairs else None
    if not path.is_dir():
        return None
    if is_voc(path):
        return ("detection", "voc")
    if any(looks_like_hf_objects(f) for f in hf_metadata_files(path)):
        return ("detection", "hf-metadata")
    if pairs := yolo_pairs(path):
        return (yolo_task(pairs), "yolo")
    if mask_pairs(path):
        return ("segmentation", "mask-folder")
    if _csv_file(path):
        return ("detection", "csv")
    return None


def _resolve(path: Path) -> tuple[Path, tuple[str, str]] | None:
    """`path` or the folder a few single-subfolder levels below it (``bccd/BCCD``) that holds dense data."""
    here = path
    for _ in range(_MAX_DESCEND + 1):
        try:
            found = _detect_here(here)
        except (OSError, DatasetError) as e:
            log.debug("dense detection at %s failed: %s", here, e)
            return None
        if found is not None:
            return here, found
        if not here.is_dir():
            return None
        subs = [p for p in here.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
        if len(subs) != 1:
            return None
        here = subs[0]
    return None


def detect_dense(path: str | Path) -> tuple[str, str] | None:
    """``(task, format)`` when `path` looks like detection/segmentation data, else None (classification folders,
    tables). Cheap: file names, the first bytes of JSON/CSV files, no image decoding. Descends through folders
    that hold a single subfolder (``bccd/`` → ``bccd/BCCD/``)."""
    got = _resolve(Path(path).expanduser())
    return None if got is None else got[1]


def _check_args(task: str | None, format: str | None) -> None:
    if task is not None and task not in DENSE_TASKS:
        raise UsageError(
            f"unknown dense task {task!r}",
            hint="use --task detection, --task instance-segmentation or --task segmentation",
        )
    if format is not None and format not in FORMATS:
        raise UsageError(f"unknown dense format {format!r}", hint=f"use one of: {', '.join(FORMATS)}")


def load_dense(
    path: str | Path, *, task: str | None = None, format: str | None = None, ignore_index: int | None = 255,
    split: str | None = None, classes: Sequence[str] | None = None, binary_masks: bool | None = None,
) -> DenseDataset:  # fmt: skip
    """Read a detection or segmentation dataset.

    Args:
        path: the dataset folder, or its annotation file (COCO ``.json``, box ``.csv``, YOLO ``data.yaml``).
        task: ``detection``, ``instance-segmentation`` or ``segmentation``; None: from the data found (COCO/YOLO
            whose annotations mostly carry masks: instance segmentation). ``detection`` on mask data reads the
            boxes; ``instance-segmentation`` on COCO/YOLO reads the masks (objects without one: their box).
        format: one of `FORMATS`; None: detected (`detect_dense`).
        ignore_index: segmentation: the mask value not scored (VOC: 255).
        split: keep only the images of this split (``train``/``val``/``test``).
        classes: the class names (index = class id); objects of other classes are dropped (``unknown-class``).
        binary_masks: masks holding only 0 and 255: True/None read 255 as foreground, False as `ignore_index`.

    Raises:
        DatasetError: no dense data at `path`, the task does not fit the data, or the annotations are unreadable.
        UsageError: an unknown task or format.
    """
    _check_args(task, format)
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"dataset path not found: {p}", hint="check the path")
    got = _resolve(p)
    root, (found_task, found_fmt) = got if got is not None else (p, ("", ""))
    fmt = format or found_fmt
    if not fmt:
        raise DatasetError(
            f"no detection/segmentation data found at {p}",
            hint="expected COCO JSON, YOLO labels/, VOC Annotations/, a box CSV, metadata.jsonl, or images/ + masks/",
        )
    want = task or found_task or ("segmentation" if fmt == "mask-folder" else "detection")
    if want == "segmentation" and format is None and fmt != "mask-folder" and mask_pairs(root):
        fmt = "mask-folder"  # a VOC tree with both Annotations/ and SegmentationClass/
    if (want == "segmentation") != (fmt == "mask-folder"):
        raise DatasetError(
            f"{root} holds {fmt} {found_task or 'data'}, not {want} data",
            hint="semantic segmentation needs images/ + index-PNG masks/; COCO/YOLO polygons are instance segmentation",
        )
    if want == "instance-segmentation" and fmt not in _MASK_FORMATS:
        raise DatasetError(
            f"{root} holds {fmt} data: instance masks are read from COCO segmentation or YOLO-seg polygons",
            hint="give COCO JSON with segmentation, or YOLO-seg labels; or use --task detection",
        )
    kwargs: dict[str, Any] = {}
    if fmt == "mask-folder":
        kwargs = {"ignore_index": ignore_index, "binary_masks": binary_masks}
    elif fmt in _MASK_FORMATS:
        kwargs = {"instance_masks": want == "instance-segmentation"}
    ds = DENSE_READERS[fmt](root, classes=classes, **kwargs)
    ds = _keep_split(_dedupe(replace(ds, root=p)), split)
    log.info(
        "read %s (%s, %s): %d images, %d classes, %d kinds of warning", p, ds.task, ds.format, len(ds.samples),
        ds.num_classes, len(ds.warnings),
    )  # fmt: skip
    return ds


def _dedupe(ds: DenseDataset) -> DenseDataset:
    """The first of the samples that share an id (an image listed twice); the others counted and dropped."""
    seen: set[str] = set()
    kept: list[DenseSample] = []
    dupes: list[DenseSample] = []
    for s in ds.samples:
        (dupes if s.id in seen else kept).append(s)
        seen.add(s.id)
    if not dupes:
        return ds
    warning = DenseWarning(
        "duplicate-image", len(dupes), f"{len(dupes)} images listed more than once: the first listing kept",
        tuple(dict.fromkeys(s.id for s in dupes))[:5],
    )  # fmt: skip
    return replace(ds, samples=kept, warnings=[*ds.warnings, warning])


def _keep_split(ds: DenseDataset, split: str | None) -> DenseDataset:
    if split is None:
        return ds
    kept = [s for s in ds.samples if s.split == split]
    if not kept:
        have = sorted({s.split for s in ds.samples if s.split})
        raise DatasetError(
            f"no images of split {split!r} in {ds.root}",
            hint=f"splits found: {', '.join(have)}" if have else "this dataset has no splits; drop --split",
        )
    return replace(ds, samples=kept)
