"""COCO JSON and Hugging Face ``metadata.jsonl`` (``objects``) box readers.

COCO: ``bbox`` is ``[x, y, w, h]`` in pixels; polygons/RLE instance masks are read as their boxes (detection) with
a counted ``polygon-as-box`` warning; ``iscrowd`` becomes the crowd flag; ``area`` is kept for the size split.
A category with id 0 named background that no annotation uses (labelme's ``_background_``) is left out of the
classes; annotation ids starting at 0 are noted (the metrics re-index them from 1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from advisor.dense.readers_common import (
    ClassTable,
    WarningLog,
    box_sample,
    dense_reader,
    find_file,
    header_size,
    read_names_file,
    split_of,
)
from advisor.dense.types import DenseDataset, DenseSample, normalise_class_name
from advisor.errors import DatasetError

_SKIP_JSON_PREFIXES = ("captions_", "person_keypoints_", "image_info_")


def coco_files(path: Path) -> list[Path]:
    """The COCO annotation files of `path` (a ``.json`` file, or a folder holding them), without reading them."""
    if path.is_file():
        return [path] if path.suffix.lower() == ".json" else []
    if not path.is_dir():
        return []
    found = [p for p in (path / "annotations.json", path / "_annotations.coco.json") if p.is_file()]
    ann_dir = path / "annotations"
    if ann_dir.is_dir():
        found += sorted(
            p for p in ann_dir.glob("*.json") if not p.name.startswith(_SKIP_JSON_PREFIXES) and p.is_file()
        )
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and split_of(p.name)):
        found += [p for p in (sub / "_annotations.coco.json", sub / "annotations.json") if p.is_file()]
    return found


def looks_like_coco(file: Path, max_bytes: int = 1 << 20) -> bool:
    """Cheap check: the start of the file is a JSON object naming ``images`` and ``annotations`` (a file larger
    than `max_bytes` whose start names ``images`` and ``file_name`` also counts: large COCO files list every
    image before the first annotation)."""
    try:
        with file.open("rb") as f:
            raw = f.read(max_bytes)
    except OSError:
        return False
    head = raw.decode("utf-8", errors="replace")
    if not head.lstrip().startswith("{") or '"images"' not in head:
        return False
    return '"annotations"' in head or (len(raw) == max_bytes and '"file_name"' in head)


def _load_json(file: Path) -> dict[str, Any]:
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(
            f"cannot read COCO annotations {file}: {e}", hint="check that it is valid JSON"
        ) from e
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DatasetError(
            f"{file} is not COCO JSON (no 'images' list)",
            hint="give a COCO instances file with images/annotations",
        )
    return doc


def _categories(doc: dict[str, Any], used: set[int], file: Path, wlog: WarningLog) -> list[tuple[int, str]]:
    """``(category id, name)`` sorted by id, an unused id-0 background category left out (noted)."""
    cats = []
    for c in doc.get("categories") or []:
        try:
            cats.append((int(c["id"]), str(c.get("name", c["id"]))))
        except (KeyError, TypeError, ValueError):
            wlog.add("bad-annotation", f"{file.name}: category {c!r:.40}")
    cats.sort()
    out = []
    for cid, name in cats:
        if cid == 0:
            dropped = normalise_class_name(name).strip() == "background" and 0 not in used
            wlog.add("category-0", f"{file.name}: {name}")
            wlog.note(
                "category-0",
                f"category id 0 {name!r}: "
                + (
                    "no box uses it; left out of the classes"
                    if dropped
                    else "kept as a class (metrics re-index)"
                ),
            )
            if dropped:
                continue
        out.append((cid, name))
    return out


def _ann_box(ann: dict[str, Any], wlog: WarningLog, where: str) -> list[float] | None:
    """``[x, y, w, h]`` of an annotation (from its polygon when it has no bbox); None when unreadable."""
    seg = ann.get("segmentation")
    if seg:
        wlog.add("polygon-as-box", where)
    bbox = ann.get("bbox")
    try:
        if bbox is not None and len(bbox) == 4:
            return [float(v) for v in bbox]
        if isinstance(seg, list) and seg:
            pts = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in seg])
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
    except (TypeError, ValueError):
        pass
    wlog.add("bad-annotation", where)
    return None


def _image_path(file: Path, root: Path, name: str) -> Path | None:
    base = file.parent
    rel = Path(name)
    stem_dir = file.stem.replace("instances_", "")
    cands = [base / rel, base / "images" / rel, base.parent / rel, base.parent / "images" / rel]
    cands += [
        root / rel,
        root / "images" / rel,
        base.parent / stem_dir / rel,
        root / "images" / stem_dir / rel,
    ]
    cands += [base / "images" / rel.name, base / rel.name]
    return find_file(cands)


def _read_file(
    file: Path, root: Path, table: ClassTable, wlog: WarningLog
) -> tuple[list[DenseSample], dict[int, int]]:
    """The samples of one COCO file and class index → source category id."""
    doc = _load_json(file)
    anns = [a for a in doc.get("annotations") or [] if isinstance(a, dict)]
    junk = [a for a in anns if not isinstance(a.get("image_id"), int | str)]
    wlog.add("bad-annotation", f"{file.name}: annotations without an image_id", len(junk))
    anns = [a for a in anns if isinstance(a.get("image_id"), int | str)]
    used = {a["category_id"] for a in anns if isinstance(a.get("category_id"), int)}
    cats = _categories(doc, used, file, wlog)
    cat_to_class: dict[int, int | None] = {cid: table.index(name) for cid, name in cats}
    source_ids = {idx: cid for cid, idx in cat_to_class.items() if idx is not None}
    if any(a.get("id") == 0 for a in anns):
        wlog.add("annotation-id-0", file.name)
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for a in anns:
        by_image.setdefault(a.get("image_id"), []).append(a)
    split = split_of(file.stem) or split_of(file.parent.name)
    samples = []
    for img in doc["images"]:
        if not isinstance(img, dict):
            wlog.add("bad-annotation", f"{file.name}: image entry {img!r:.40}")
            continue
        s = _sample(img, by_image.pop(img.get("id"), []), file, root, cat_to_class, wlog, split)
        if s is not None:
            samples.append(s)
    wlog.add(
        "bad-annotation",
        f"{file.name}: annotations of unknown image ids",
        sum(len(v) for v in by_image.values()),
    )
    return samples, source_ids


def _sample(
    img: dict[str, Any],
    anns: list[dict[str, Any]],
    file: Path,
    root: Path,
    cat_to_class: dict[int, int | None],
    wlog: WarningLog,
    split: str | None,
) -> DenseSample | None:
    name = img.get("file_name")
    if not isinstance(name, str):
        wlog.add("bad-annotation", f"{file.name}: image {img.get('id')!r} without file_name")
        return None
    path = _image_path(file, root, name)
    if path is None:
        wlog.skip("missing-image", str(file.parent / name), f"image file not found (listed in {file.name})")
        return None
    try:
        w, h = int(img.get("width") or 0), int(img.get("height") or 0)
    except (TypeError, ValueError):
        w = h = 0
    if w <= 0 or h <= 0:
        size = header_size(path, wlog)
        if size is None:
            return None
        w, h = size
    rows, labels, crowd, areas = [], [], [], []
    for a in anns:
        where = f"{name}#{a.get('id')}"
        box = _ann_box(a, wlog, where)
        cid = a.get("category_id")
        cls = cat_to_class.get(cid) if isinstance(cid, int) else None
        if box is None:
            continue
        if cls is None:
            wlog.add("unknown-class", f"{where}: category {a.get('category_id')!r}")
            continue
        x, y, bw, bh = box
        rows.append([x, y, x + bw, y + bh])
        labels.append(cls)
        crowd.append(bool(a.get("iscrowd", 0)))
        area = a.get("area")
        areas.append(float(area) if isinstance(area, int | float) and area > 0 else np.nan)
    if not len(anns):
        wlog.add("unlabelled-image", name)
    return box_sample(
        path,
        root,
        (w, h),
        rows,
        labels,
        wlog,
        name,
        split=split,
        crowd=crowd,
        areas=areas,
        source_id=img.get("id"),
    )


@dense_reader("coco")
def read_coco(path: Path, *, classes: Sequence[str] | None = None) -> DenseDataset:
    """Read COCO instances JSON (one file, or a folder of them: one per split) as a detection dataset.

    Raises:
        DatasetError: no COCO file, unreadable JSON, or no image found.
    """
    files = [f for f in coco_files(path) if looks_like_coco(f)]
    if not files:
        raise DatasetError(f"no COCO annotation file found at {path}", hint="give the instances .json file")
    root = path.parent if path.is_file() else path
    table, wlog = ClassTable(classes), WarningLog()
    samples: list[DenseSample] = []
    source: dict[int, int] = {}
    for f in files:
        got, ids = _read_file(f, root, table, wlog)
        samples += got
        for idx, cid in ids.items():
            source.setdefault(idx, cid)
    cat_ids = [source.get(i, -1) for i in range(len(table.names))]
    return DenseDataset(
        root=path, task="detection", format="coco", classes=table.names, samples=samples,
        warnings=wlog.warnings(), skipped=wlog.skipped, category_ids=cat_ids,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------- HF metadata.jsonl
def hf_metadata_files(path: Path) -> list[Path]:
    """``metadata.jsonl`` files of an imagefolder (the root's, or one per split folder)."""
    if not path.is_dir():
        return []
    found = [path / "metadata.jsonl"] if (path / "metadata.jsonl").is_file() else []
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and split_of(p.name)):
        if (sub / "metadata.jsonl").is_file():
            found.append(sub / "metadata.jsonl")
    return found


def looks_like_hf_objects(file: Path) -> bool:
    """The first record of the file has an ``objects`` field."""
    try:
        with file.open("r", encoding="utf-8", errors="replace") as f:
            first = f.readline()
        return isinstance(rec := json.loads(first), dict) and "objects" in rec
    except (OSError, json.JSONDecodeError):
        return False


def _objects(rec: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """``(bboxes, categories)`` of a record: ``objects`` as a dict of lists or a list of dicts."""
    obj = rec.get("objects") or {}
    if isinstance(obj, list):
        return [o.get("bbox") for o in obj], [o.get("category", o.get("categories")) for o in obj]
    cats = obj.get("categories", obj.get("category", obj.get("label", [])))
    return list(obj.get("bbox") or []), list(cats or [])


def _hf_record(
    rec: dict[str, Any], base: Path, root: Path, table: ClassTable, wlog: WarningLog, split: str | None
) -> DenseSample | None:
    name = str(rec.get("file_name", ""))
    path = find_file([base / name]) if name else None
    if path is None:
        wlog.skip("missing-image", str(base / name), "image file not found (listed in metadata.jsonl)")
        return None
    size = header_size(path, wlog)
    if size is None:
        return None
    bboxes, cats = _objects(rec)
    rows, labels = [], []
    for bb, c in zip(bboxes, cats, strict=False):
        named_by_id = isinstance(c, int) and table.fixed and 0 <= c < len(table.names)
        idx = c if named_by_id else table.index(str(c))
        if idx is None or not isinstance(bb, list) or len(bb) != 4:
            wlog.add("unknown-class" if idx is None else "bad-annotation", f"{name}: {c!r}")
            continue
        x, y, bw, bh = (float(v) for v in bb)
        rows.append([x, y, x + bw, y + bh])
        labels.append(idx)
    if not bboxes:
        wlog.add("unlabelled-image", name)
    return box_sample(path, root, size, rows, labels, wlog, name, split=split)


@dense_reader("hf-metadata")
def read_hf_metadata(path: Path, *, classes: Sequence[str] | None = None) -> DenseDataset:
    """Read a Hugging Face imagefolder whose ``metadata.jsonl`` has ``objects`` (``bbox`` as COCO ``x, y, w, h``;
    ``categories`` as ints (names from ``classes.txt`` or `classes`) or as names).

    Raises:
        DatasetError: no metadata file or unreadable records.
    """
    files = hf_metadata_files(path)
    if not files:
        raise DatasetError(
            f"no metadata.jsonl found in {path}", hint="give the imagefolder with metadata.jsonl"
        )
    names = classes
    names_file = find_file([path / "classes.txt", path / "class_names.txt"])
    if names is None and names_file is not None:
        names = read_names_file(names_file)
    table, wlog = ClassTable(names), WarningLog()
    samples = []
    for f in files:
        split = split_of(f.parent.name) if f.parent != path else None
        for n, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            try:
                rec = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                rec = None
                wlog.add("bad-annotation", f"{f.name}:{n}")
            if (
                isinstance(rec, dict)
                and (s := _hf_record(rec, f.parent, path, table, wlog, split)) is not None
            ):
                samples.append(s)
    if names is None:
        names_out, remap = _int_names(table, wlog)
        samples = [_relabel(s, remap) for s in samples]
    else:
        names_out = table.names
    return DenseDataset(
        root=path, task="detection", format="hf-metadata", classes=names_out, samples=samples,
        warnings=wlog.warnings(), skipped=wlog.skipped,
    )  # fmt: skip


def _int_names(table: ClassTable, wlog: WarningLog) -> tuple[list[str], np.ndarray]:
    """Names that are all integers → ``0..max`` in numeric order (noted as unnamed); else sorted names."""
    if table.names and all(n.lstrip("-").isdigit() for n in table.names):
        top = max(int(n) for n in table.names)
        remap = np.asarray([int(n) for n in table.names], dtype=np.int64)
        wlog.add("unnamed-classes", None, top + 1)
        return [str(i) for i in range(top + 1)], remap
    return table.sorted_remap()


def _relabel(s: DenseSample, remap: np.ndarray) -> DenseSample:
    from dataclasses import replace

    return replace(s, labels=remap[s.labels] if len(s.labels) else s.labels)
