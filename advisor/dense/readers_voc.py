"""Pascal VOC XML and box-CSV readers.

VOC: ``Annotations/*.xml`` beside ``JPEGImages/``; the size comes from the XML ``<size>`` (the image header when it
is missing), boxes from ``<bndbox>`` as given (VOC's 1-based corners are not shifted); ``difficult`` objects become
crowd boxes (ignored by matching, as VOC evaluation ignores them); ``ImageSets/Main/{train,val,test}.txt`` give
the splits. Box CSV: one row per box (``image``/``filename``, ``xmin, ymin, xmax, ymax`` or ``x, y, w, h``,
``label``/``class``); a row without a box lists an image with no objects.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from advisor.dense.readers_common import (
    IMAGE_EXTS,
    ClassTable,
    WarningLog,
    box_sample,
    dense_reader,
    listed_image,
)
from advisor.dense.types import DenseDataset, DenseSample
from advisor.errors import DatasetError

SPLIT_FILES = ("train", "val", "test")


def is_voc(path: Path) -> bool:
    """``Annotations/`` with at least one ``.xml`` (cheap: stops at the first)."""
    ann = path / "Annotations"
    return ann.is_dir() and next(ann.glob("*.xml"), None) is not None


def voc_splits(root: Path) -> dict[str, str]:
    """Image stem → split from ``ImageSets/Main/{train,val,test}.txt``."""
    out: dict[str, str] = {}
    for name in SPLIT_FILES:
        f = root / "ImageSets" / "Main" / f"{name}.txt"
        if f.is_file():
            for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.split():
                    out.setdefault(line.split()[0], name)
    return out


def _text(el: ET.Element | None, tag: str) -> str | None:
    child = el.find(tag) if el is not None else None
    return child.text.strip() if child is not None and child.text else None


def _num(el: ET.Element | None, tag: str) -> float:
    v = _text(el, tag)
    return float(v) if v is not None else float("nan")


def _voc_images(root: Path, xml: Path, filename: str | None) -> list[Path]:
    img_dir = root / "JPEGImages"
    cands = [img_dir / filename] if filename else []
    stem = Path(filename).stem if filename else xml.stem
    cands += [img_dir / f"{s}{ext}" for s in dict.fromkeys((stem, xml.stem)) for ext in sorted(IMAGE_EXTS)]
    return cands


def _voc_sample(
    root: Path, xml: Path, table: ClassTable, wlog: WarningLog, splits: dict[str, str]
) -> DenseSample | None:
    try:
        doc = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as e:
        wlog.skip("bad-annotation", str(xml), f"cannot parse the XML: {e}")
        return None
    size_el = doc.find("size")
    cands = _voc_images(root, xml, _text(doc, "filename"))
    why = "its image is not in JPEGImages/"
    found = listed_image(cands, wlog, str(xml), why, _num(size_el, "width"), _num(size_el, "height"))
    if found is None:
        return None
    path, (w, h) = found
    rows, labels, crowd = [], [], []
    for obj in doc.findall("object"):
        idx = table.index(_text(obj, "name") or "")
        bb = obj.find("bndbox")
        if bb is None:
            wlog.add("bad-annotation", f"{xml.name}: an object without <bndbox>")
            continue
        if idx is None:
            wlog.add("unknown-class", f"{xml.name}: {_text(obj, 'name')!r}")
            continue
        rows.append([_num(bb, "xmin"), _num(bb, "ymin"), _num(bb, "xmax"), _num(bb, "ymax")])
        labels.append(idx)
        crowd.append(_text(obj, "difficult") == "1")
    if not rows:
        wlog.add("unlabelled-image", path.name)
    split = splits.get(path.stem, splits.get(xml.stem))
    return box_sample(path, root, (w, h), rows, labels, wlog, xml.name, split=split, crowd=crowd)


@dense_reader("voc")
def read_voc(path: Path, *, classes: Sequence[str] | None = None) -> DenseDataset:
    """Read a Pascal VOC detection folder (``Annotations/``, ``JPEGImages/``, optional ``ImageSets/Main``).

    Classes are the given `classes`, else the object names found, sorted.

    Raises:
        DatasetError: no XML annotations.
    """
    xmls = sorted((path / "Annotations").glob("*.xml"))
    if not xmls:
        raise DatasetError(
            f"no Pascal VOC annotations in {path / 'Annotations'}", hint="give the VOC root folder"
        )
    table, wlog, splits = ClassTable(classes), WarningLog(), voc_splits(path)
    samples = [s for x in xmls if (s := _voc_sample(path, x, table, wlog, splits)) is not None]
    names, remap = table.sorted_remap()
    samples = [_relabelled(s, remap) for s in samples]
    return DenseDataset(
        root=path, task="detection", format="voc", classes=names, samples=samples, warnings=wlog.warnings(),
        skipped=wlog.skipped,
    )  # fmt: skip


def _relabelled(s: DenseSample, remap: np.ndarray) -> DenseSample:
    from dataclasses import replace

    return replace(s, labels=remap[s.labels]) if len(s.labels) else s


# ----------------------------------------------------------------------------------------------- box CSV
IMAGE_COLS = ("image", "filename", "file_name", "image_path", "path", "file", "img", "image_id")
LABEL_COLS = ("label", "class", "class_name", "category", "category_name", "name")
XYXY_COLS = (("xmin", "ymin", "xmax", "ymax"), ("x1", "y1", "x2", "y2"), ("left", "top", "right", "bottom"))
XYWH_COLS = (("x", "y", "w", "h"), ("x", "y", "width", "height"), ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))


def csv_columns(header: Sequence[str]) -> dict[str, object] | None:
    """The image, label and box columns of a box CSV header (lower-cased match); None when it is not one."""
    cols = [h.strip().lower() for h in header]

    def first(names: Sequence[str]) -> str | None:
        return next((n for n in names if n in cols), None)

    image, label = first(IMAGE_COLS), first(LABEL_COLS)
    xyxy = next((c for c in XYXY_COLS if all(n in cols for n in c)), None)
    xywh = None if xyxy else next((c for c in XYWH_COLS if all(n in cols for n in c)), None)
    if image is None or label is None or (xyxy is None and xywh is None):
        return None
    return {
        "image": image,
        "label": label,
        "box": xyxy or xywh,
        "xywh": xyxy is None,
        "split": first(("split",)),
    }


def read_csv_header(file: Path) -> list[str]:
    """The first row of a CSV/TSV file (empty when unreadable)."""
    try:
        with file.open("r", encoding="utf-8-sig", errors="replace", newline="") as f:
            line = f.readline()
    except OSError:
        return []
    return next(csv.reader([line], delimiter="\t" if file.suffix.lower() == ".tsv" else ","), [])


@dense_reader("csv")
def read_box_csv(file: Path, *, classes: Sequence[str] | None = None) -> DenseDataset:
    """Read a box CSV (one row per box; image paths relative to the CSV's folder or its ``images/``).

    Raises:
        DatasetError: the header has no image, label and box columns.
    """
    spec = csv_columns(read_csv_header(file))
    if spec is None:
        raise DatasetError(
            f"{file} is not a box CSV",
            hint="it needs image/filename, label/class and xmin,ymin,xmax,ymax columns",
        )
    table, wlog = ClassTable(classes), WarningLog()
    rows_by_image: dict[str, list[dict[str, str]]] = {}
    with file.open("r", encoding="utf-8-sig", errors="replace", newline="") as f:
        delim = "\t" if file.suffix.lower() == ".tsv" else ","
        for row in csv.DictReader(f, delimiter=delim):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            rows_by_image.setdefault(row.get(str(spec["image"]), ""), []).append(row)
    samples = [
        s for name, rows in rows_by_image.items() if (s := _csv_sample(file, name, rows, spec, table, wlog))
    ]
    names, remap = table.sorted_remap()
    return DenseDataset(
        root=file, task="detection", format="csv", classes=names, samples=[_relabelled(s, remap) for s in samples],
        warnings=wlog.warnings(), skipped=wlog.skipped,
    )  # fmt: skip


def _csv_sample(
    file: Path,
    name: str,
    rows: list[dict[str, str]],
    spec: dict[str, object],
    table: ClassTable,
    wlog: WarningLog,
) -> DenseSample | None:
    base = file.parent
    dirs = (base, base / "images", base / "JPEGImages")
    # Kaggle-style image_id columns have no extension
    cands = [d / name for d in dirs] + [d / f"{name}{ext}" for d in dirs for ext in (".jpg", ".png", ".jpeg")]
    why = f"image file not found (listed in {file.name})"
    found = listed_image(cands if name else [], wlog, str(base / name), why)
    if found is None:
        return None
    path, size = found
    box_cols = [str(c) for c in spec["box"]]  # type: ignore[attr-defined]
    boxes, labels = [], []
    for row in rows:
        vals = [row.get(c, "") for c in box_cols]
        if not any(vals):
            continue  # an image listed without boxes
        try:
            x1, y1, a, b = (float(v) for v in vals)
        except ValueError:
            wlog.add("bad-annotation", f"{file.name}: {name}")
            continue
        idx = table.index(row.get(str(spec["label"]), ""))
        if idx is None:
            wlog.add("unknown-class", f"{name}: {row.get(str(spec['label']))!r}")
            continue
        boxes.append([x1, y1, x1 + a, y1 + b] if spec["xywh"] else [x1, y1, a, b])
        labels.append(idx)
    if not boxes:
        wlog.add("unlabelled-image", name)
    split_col = spec.get("split")
    split = rows[0].get(str(split_col)) or None if split_col else None
    return box_sample(path, base, size, boxes, labels, wlog, name, split=split)
