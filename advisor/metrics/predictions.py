"""Reading prediction files for `advisor metrics`: COCO results JSON, YOLO txt folders, index-mask folders.

Predictions are matched to ground-truth samples by image: a COCO ``image_id`` is the ground-truth COCO file's
image id (when the ground truth is a COCO JSON) or a file name; YOLO txt and mask files by file stem. Bad input
raises `DatasetError` with one line naming the file; predictions for images not in the ground truth are counted
in the notes and ignored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from advisor.dense.types import DenseDataset, Detections, normalise_class_name
from advisor.errors import DatasetError

log = logging.getLogger(__name__)

__all__ = [
    "MASK_SUFFIXES",
    "DetectionPredictions",
    "MaskPredictions",
    "class_map_from_names",
    "read_coco_results",
    "read_detection_predictions",
    "read_mask_predictions",
    "read_yolo_predictions",
]

MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")
_MAX_JSON_BYTES = 2_000_000_000


@dataclass
class DetectionPredictions:
    """Detections per ground-truth sample id, the format they were read from and notes on what was ignored."""

    detections: dict[str, Detections]
    format: str
    notes: list[str] = field(default_factory=list)


@dataclass
class MaskPredictions:
    """Predicted index-mask files per ground-truth sample id."""

    masks: dict[str, Path]
    format: str = "mask-folder"
    notes: list[str] = field(default_factory=list)


class _ImageIndex:
    """Resolves an image reference (sample id, relative path, file name or stem) to a ground-truth sample id."""

    def __init__(self, gt: DenseDataset) -> None:
        self.ids = {s.id for s in gt.samples}
        self.by_key: dict[str, str | None] = {}
        self.by_source: dict[Any, str] = {s.source_id: s.id for s in gt.samples if s.source_id is not None}
        for s in gt.samples:
            p = PurePosixPath(s.id)
            for key in (p.name, p.stem, Path(s.path).name, Path(s.path).stem):
                # a name shared by two samples is ambiguous: it matches nothing
                self.by_key[key] = s.id if self.by_key.get(key, s.id) == s.id else None

    def resolve_image_id(self, image: Any) -> str | None:
        """A COCO ``image_id``: the source id of a sample (`DenseSample.source_id`), else a file reference."""
        if image in self.by_source:
            return self.by_source[image]
        return self.resolve(str(image))

    def resolve(self, ref: str) -> str | None:
        """The sample id `ref` names, or None."""
        if ref in self.ids:
            return ref
        p = PurePosixPath(ref.replace("\\", "/"))
        for key in (p.name, p.stem):
            found = self.by_key.get(key)
            if found is not None:
                return found
        return None


def _load_json(path: Path) -> Any:
    try:
        if path.stat().st_size > _MAX_JSON_BYTES:
            raise DatasetError(f"{path}: {path.stat().st_size} bytes is too large to read as JSON")
        with path.open("rb") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(
            f"{path}: not readable as JSON ({e.__class__.__name__}: {e})", hint="check the file"
        ) from None


def _category_resolver(gt: DenseDataset, notes: list[str]) -> dict[int, int]:
    """COCO results ``category_id`` -> ground-truth class index: the source COCO category ids when the ground
    truth is COCO (`DenseDataset.category_ids`), else 1 + the class index (noted)."""
    if gt.category_ids:
        return {int(cid): i for i, cid in enumerate(gt.category_ids) if cid is not None and cid >= 0}
    notes.append(
        f"category_id read as 1 + the class index in {gt.classes} (the ground truth has no COCO ids)"
    )
    return {i + 1: i for i in range(gt.num_classes)}


def _coco_row(path: Path, i: int, row: Any, masks: bool) -> tuple[Any, Any, list[float] | None, float, Any]:
    """(image, category, bbox or None, score, segmentation or None) of one result; `masks`: segm results."""
    what = "a COCO segm result" if masks else "a COCO detection"
    try:
        bbox = [float(v) for v in row["bbox"]] if not masks or "bbox" in row else None
        if bbox is not None and len(bbox) != 4:
            raise ValueError("bbox needs 4 numbers")
        seg = row["segmentation"] if masks else None
        image = row["image_id"]
        if not isinstance(image, int | str) or isinstance(image, bool):
            raise ValueError("image_id must be a number or a file name")
        return image, row.get("category_id", row.get("category_name")), bbox, float(row["score"]), seg
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        need = "segmentation (RLE or polygons)" if masks else "bbox [x, y, w, h]"
        raise DatasetError(
            f"{path}: result {i} is not {what} ({e.__class__.__name__}: {e})",
            hint=f"each result needs image_id, category_id, {need} and score",
        ) from None


def read_coco_results(path: Path, gt: DenseDataset, *, masks: bool = False) -> DetectionPredictions:
    """A COCO results JSON (a list of ``{image_id, category_id, bbox: [x, y, w, h], score}``; with `masks`, segm
    results: each with a ``segmentation``, compressed or uncompressed RLE or polygons, and ``bbox`` optional).

    ``image_id`` is the ground truth's COCO image id (`DenseSample.source_id`) or a file name / path / stem;
    ``category_id`` the ground truth's COCO category id (or 1 + class index when it has none); a
    ``category_name`` field is matched by name instead. Segm results become `InstanceDetections` (a result
    without a ``bbox`` gets its mask's box); a mask that cannot be read at its image's size is counted and ignored.

    Raises:
        DatasetError: the file is not a COCO results list (named).
    """
    path = Path(path)
    data = _load_json(path)
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]
    if not isinstance(data, list):
        raise DatasetError(f"{path}: a COCO results file is a JSON list of detections", hint="check the file")
    notes: list[str] = []
    cats = _category_resolver(gt, notes)
    by_name = {normalise_class_name(n): i for i, n in enumerate(gt.classes)}
    index = _ImageIndex(gt)
    rows: dict[str, list[tuple[list[float] | None, float, int, Any]]] = {}
    missing: set[str] = set()
    dropped = 0
    for i, row in enumerate(data):
        image, cat, bbox, score, seg = _coco_row(path, i, row, masks)
        sid = index.resolve_image_id(image)
        label = by_name.get(normalise_class_name(cat)) if isinstance(cat, str) else _int_or_none(cats, cat)
        if sid is None:
            missing.add(str(image))
            continue
        if label is None:
            dropped += 1
            continue
        box = None if bbox is None else [bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]]
        rows.setdefault(sid, []).append((box, score, label, seg))
    _note_unmatched(notes, missing, "image id(s)")
    if dropped:
        notes.append(f"{dropped} result(s) with a category not in the ground truth, ignored")
    if masks:
        samples = {x.id: x for x in gt.samples}
        out = {k: _instances(v, samples[k], notes) for k, v in rows.items()}
        return DetectionPredictions(dict(out), "coco-segm-results", notes)
    boxes_only = {k: [(r[0] or [], r[1], r[2]) for r in v] for k, v in rows.items()}  # bbox required here
    return DetectionPredictions({k: _detections(v) for k, v in boxes_only.items()}, "coco-results", notes)


def _instances(
    rows: list[tuple[list[float] | None, float, int, Any]], sample: Any, notes: list[str]
) -> Detections:
    """One image's segm results as `InstanceDetections`; masks that do not parse at the image size are noted."""
    from advisor.dense.instance_masks import InstanceMasks, parse_segmentation
    from advisor.dense.types import InstanceDetections

    kept, segs = [], []
    for r in rows:
        seg = parse_segmentation(r[3], sample.height, sample.width)
        if seg is None:
            continue
        kept.append(r)
        segs.append(seg)
    if len(kept) < len(rows):
        notes.append(
            f"{sample.id}: {len(rows) - len(kept)} result mask(s) not readable at the image size, ignored"
        )
    masks = InstanceMasks(sample.height, sample.width, tuple(segs))
    from_masks = masks.boxes()
    boxes = [r[0] if r[0] is not None else list(from_masks[j]) for j, r in enumerate(kept)]
    det = _detections([(b, r[1], r[2]) for b, r in zip(boxes, kept, strict=True)])
    return InstanceDetections(det.boxes, det.scores, det.labels, masks)


def _int_or_none(table: dict[int, int], value: Any) -> int | None:
    try:
        return table.get(int(value))
    except (TypeError, ValueError):
        return None


def _detections(rows: list[tuple[list[float], float, int]]) -> Detections:
    return Detections(
        boxes=np.array([r[0] for r in rows], dtype=np.float32).reshape(-1, 4),
        scores=np.array([r[1] for r in rows], dtype=np.float32),
        labels=np.array([r[2] for r in rows], dtype=np.int64),
    )


def _note_unmatched(notes: list[str], missing: set[str], what: str) -> None:
    if missing:
        examples = ", ".join(sorted(missing)[:3])
        notes.append(f"{len(missing)} {what} not in the ground truth, ignored (e.g. {examples})")


def _yolo_file(path: Path, width: int, height: int) -> tuple[list[tuple[list[float], float, int]], bool]:
    """One YOLO txt file's rows in absolute xyxy; and whether any row lacked a confidence."""
    rows, no_conf = [], False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not readable ({e.__class__.__name__})") from None
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (5, 6):
            raise DatasetError(
                f"{path}:{n}: expected 'class cx cy w h conf' (normalised), got {len(parts)} values",
                hint="YOLO predictions are saved with save_txt=True, save_conf=True",
            )
        try:
            cls = int(float(parts[0]))
            cx, cy, w, h = (float(v) for v in parts[1:5])
            conf = float(parts[5]) if len(parts) == 6 else 1.0
        except ValueError:
            raise DatasetError(f"{path}:{n}: not numbers: {line.strip()[:80]!r}") from None
        no_conf |= len(parts) == 5
        box = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
        rows.append((box, conf, cls))
    return rows, no_conf


def read_yolo_predictions(folder: Path, gt: DenseDataset) -> DetectionPredictions:
    """A folder of YOLO txt predictions (``class cx cy w h conf`` normalised; one file per image, same stem).

    Image sizes come from the ground truth; class ids are ground-truth class indices.

    Raises:
        DatasetError: a file or line that is not YOLO predictions (named).
    """
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*.txt") if p.name != "classes.txt")
    index = _ImageIndex(gt)
    sizes = {s.id: (s.width, s.height) for s in gt.samples}
    out: dict[str, Detections] = {}
    missing: set[str] = set()
    no_conf = 0
    for f in files:
        sid = index.resolve(f.relative_to(folder).as_posix())
        if sid is None:
            missing.add(f.name)
            continue
        rows, lacked = _yolo_file(f, *sizes[sid])
        no_conf += int(lacked)
        bad = [r for r in rows if not 0 <= r[2] < gt.num_classes]
        if bad:
            raise DatasetError(
                f"{f}: class {bad[0][2]} is not one of the {gt.num_classes} ground-truth classes",
                hint=f"YOLO class ids are 0-based indices into {gt.classes}",
            )
        out[sid] = _detections(rows)
    notes: list[str] = []
    _note_unmatched(notes, missing, "prediction file(s)")
    if no_conf:
        notes.append(
            f"{no_conf} file(s) without a confidence column: score 1.0 (AP then depends on file order)"
        )
    return DetectionPredictions(out, "yolo-txt", notes)


def read_detection_predictions(path: Path, gt: DenseDataset) -> DetectionPredictions:
    """Detections from a COCO results JSON file or a YOLO txt folder.

    Raises:
        DatasetError: the path is neither (named), or its content is not valid.
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".json":
        return read_coco_results(path, gt)
    if path.is_dir() and any(path.rglob("*.txt")):
        return read_yolo_predictions(path, gt)
    raise DatasetError(
        f"{path}: not a prediction file or folder",
        hint="give a COCO results .json or a folder of YOLO .txt files (class cx cy w h conf)",
    )


def read_mask_predictions(folder: Path, gt: DenseDataset) -> MaskPredictions:
    """A folder of predicted index masks (PNG, value = class index), one per image with the image's stem.

    Raises:
        DatasetError: the folder holds no mask files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder of predicted masks", hint="give a folder of index PNGs")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in MASK_SUFFIXES and p.is_file())
    if not files:
        raise DatasetError(f"{folder}: no mask files ({', '.join(MASK_SUFFIXES)})", hint="give index PNGs")
    index = _ImageIndex(gt)
    out: dict[str, Path] = {}
    missing: set[str] = set()
    for f in files:
        sid = index.resolve(f.relative_to(folder).as_posix())
        if sid is None:
            missing.add(f.name)
        else:
            out[sid] = f
    notes: list[str] = []
    _note_unmatched(notes, missing, "mask file(s)")
    return MaskPredictions(out, notes=notes)


def class_map_from_names(pred_classes: list[str], gt_classes: list[str]) -> Mapping[int, int | None]:
    """Prediction label -> ground-truth class index by normalised name (None where the name is not shared)."""
    names = {normalise_class_name(n): i for i, n in enumerate(gt_classes)}
    return {i: names.get(normalise_class_name(n)) for i, n in enumerate(pred_classes)}
