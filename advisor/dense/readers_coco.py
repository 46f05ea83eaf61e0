"""COCO JSON and Hugging Face ``metadata.jsonl`` (``objects``) box readers.

COCO: ``bbox`` is ``[x, y, w, h]`` in pixels; ``iscrowd`` becomes the crowd flag; ``area`` is kept for the size split.
``segmentation`` (polygons, uncompressed or compressed RLE): when at least half of the annotations carry one (or
when asked), the data is read as instance segmentation, each object keeping its mask (`InstanceMasks`; an object
without one, or with an unreadable one, gets its box as the mask, counted); otherwise the masks are read as their
boxes (detection) with a counted ``polygon-as-box`` warning.
A category with id 0 named background that no annotation uses (labelme's ``_background_``) is left out of the
classes; annotation ids starting at 0 are noted (the metrics re-index them from 1).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from advisor.dense.instance_masks import InstanceMasks, Segmentation, box_polygon, parse_segmentation
from advisor.dense.readers_common import (
    ClassTable,
    WarningLog,
    box_sample,
    dense_reader,
    find_file,
    listed_image,
    read_names_file,
    split_of,
)
from advisor.dense.types import DenseDataset, DenseSample, normalise_class_name
from advisor.errors import DatasetError

_SKIP_JSON_PREFIXES = ("captions_", "person_keypoints_", "image_info_")
# share of annotations with a mask from which COCO data is read as instance segmentation
MASK_SHARE = 0.5
# a non-empty COCO segmentation: polygon parts ([[x, ...), a flat polygon ([x, ...) or an RLE dict ({)
_MASK_RE = re.compile(rb'"segmentation"\s*:\s*(?:\[\s*\[\s*-?[\d.]|\[\s*-?[\d.]|\{)')
_ANN_RE = re.compile(rb'"category_id"\s*:')


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


def has_mask(ann: dict[str, Any]) -> bool:
    """Whether a COCO annotation carries a non-empty ``segmentation``."""
    seg = ann.get("segmentation")
    return isinstance(seg, dict | list) and bool(seg) and seg != [[]]


def coco_mask_share(file: Path) -> tuple[int, int]:
    """``(annotations with a mask, annotations)`` of a COCO file, counted on its bytes (no JSON parsing: cheap
    enough for task detection on large files; remembered while the file is unchanged)."""
    try:
        st = file.stat()
    except OSError:
        return 0, 0
    return _mask_share(str(file.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _mask_share(file: str, size: int, mtime_ns: int) -> tuple[int, int]:
    del size, mtime_ns  # the cache key: a changed file is counted again
    try:
        raw = Path(file).read_bytes()
    except OSError:
        return 0, 0
    return len(_MASK_RE.findall(raw)), len(_ANN_RE.findall(raw))


def coco_task(files: Sequence[Path]) -> str:
    """``instance-segmentation`` when at least `MASK_SHARE` of the annotations of `files` have a mask, else
    ``detection`` (the rule `read_coco` applies, counted without parsing)."""
    counts = [coco_mask_share(f) for f in files]
    n_masks, n_anns = sum(c[0] for c in counts), sum(c[1] for c in counts)
    return "instance-segmentation" if n_anns and n_masks >= MASK_SHARE * n_anns else "detection"


def _seg_box(seg: Segmentation, size: tuple[int, int]) -> list[float]:
    """``[x, y, w, h]`` of a parsed segmentation (the polygon's extent, or the RLE mask's tight box)."""
    if isinstance(seg, dict):
        x1, y1, x2, y2 = (float(v) for v in InstanceMasks(size[1], size[0], (seg,)).boxes()[0])
        return [x1, y1, x2 - x1, y2 - y1]
    pts = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in seg])
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def _ann_object(
    ann: dict[str, Any], size: tuple[int, int], wlog: WarningLog, where: str, with_masks: bool
) -> tuple[list[float], Segmentation | None] | None:
    """``([x, y, w, h], mask)`` of an annotation: its bbox, else the box of its polygon/RLE; the parsed mask when
    `with_masks` (None: none given or unreadable, counted). None when no box can be had."""
    raw_box = ann.get("bbox")
    bbox = raw_box if isinstance(raw_box, list | tuple) and len(raw_box) == 4 else None
    seg = None
    if has_mask(ann) and (with_masks or bbox is None):  # detection parses a mask only for a missing bbox
        seg = parse_segmentation(ann.get("segmentation"), size[1], size[0])
    if has_mask(ann) and not with_masks:
        wlog.add("polygon-as-box", where)
    elif has_mask(ann) and seg is None:
        wlog.add("bad-mask", where)
    box = None
    try:
        if bbox is not None:
            box = [float(v) for v in bbox]
        elif seg is not None:
            box = _seg_box(seg, size)
    except (TypeError, ValueError):
        box = None
    if box is None:
        wlog.add("bad-annotation", where)
        return None
    return box, seg if with_masks else None


def _image_candidates(file: Path, root: Path, name: str) -> list[Path]:
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
    return cands


def _read_file(
    file: Path, doc: dict[str, Any], root: Path, table: ClassTable, wlog: WarningLog, with_masks: bool
) -> tuple[list[DenseSample], dict[int, int]]:
    """The samples of one COCO file (`doc`, its parsed JSON) and class index → source category id."""
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
        s = _sample(img, by_image.pop(img.get("id"), []), file, root, cat_to_class, wlog, split, with_masks)
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
    with_masks: bool = False,
) -> DenseSample | None:
    name = img.get("file_name")
    if not isinstance(name, str):
        wlog.add("bad-annotation", f"{file.name}: image {img.get('id')!r} without file_name")
        return None
    why = f"image file not found (listed in {file.name})"
    cands = _image_candidates(file, root, name)
    found = listed_image(cands, wlog, str(file.parent / name), why, img.get("width"), img.get("height"))
    if found is None:
        return None
    path, (w, h) = found
    rows, labels, crowd, areas = [], [], [], []
    segs: list[Segmentation] = []
    for a in anns:
        where = f"{name}#{a.get('id')}"
        got = _ann_object(a, (w, h), wlog, where, with_masks)
        cid = a.get("category_id")
        cls = cat_to_class.get(cid) if isinstance(cid, int) else None
        if got is None:
            continue
        if cls is None:
            wlog.add("unknown-class", f"{where}: category {a.get('category_id')!r}")
            continue
        (x, y, bw, bh), seg = got
        rows.append([x, y, x + bw, y + bh])
        labels.append(cls)
        crowd.append(bool(a.get("iscrowd", 0)))
        area = a.get("area")
        area_v = float(area) if isinstance(area, int | float) and area > 0 else np.nan
        if with_masks:
            if seg is None:  # no mask given ("bad-mask" counted the unreadable ones)
                if not has_mask(a):
                    wlog.add("box-as-mask", where)
                seg = box_polygon(rows[-1])
            elif np.isnan(area_v):  # COCO's area of a segment is its mask's
                area_v = float(InstanceMasks(h, w, (seg,)).areas()[0])
            segs.append(seg)
        areas.append(area_v)
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
        masks=InstanceMasks(h, w, tuple(segs)) if with_masks else None,
    )


def _mask_mode(docs: list[tuple[Path, dict[str, Any]]], instance_masks: bool | None) -> bool:
    """Whether to read the masks: as asked, else when at least `MASK_SHARE` of the annotations carry one.

    Raises:
        DatasetError: instance masks asked for, but no annotation has one.
    """
    anns = [a for _f, d in docs for a in d.get("annotations") or [] if isinstance(a, dict)]
    n_masks = sum(has_mask(a) for a in anns)
    if instance_masks and not n_masks:
        raise DatasetError(
            f"{docs[0][0]}: no annotation has a segmentation (polygon or RLE): boxes only",
            hint="read it as detection (--task detection), or add instance masks",
        )
    if instance_masks is not None:
        return instance_masks
    return bool(anns) and n_masks >= MASK_SHARE * len(anns)


@dense_reader("coco")
def read_coco(
    path: Path, *, classes: Sequence[str] | None = None, instance_masks: bool | None = None
) -> DenseDataset:
    """Read COCO instances JSON (one file, or a folder of them: one per split) as a detection or an
    instance-segmentation dataset.

    Args:
        path: the JSON file, or a folder holding them.
        classes: the class names (objects of others dropped).
        instance_masks: True reads the masks (instance segmentation), False reads boxes only (detection); None:
            masks when at least half of the annotations have one.

    Raises:
        DatasetError: no COCO file, unreadable JSON, no image found, or masks asked for and none given.
    """
    files = [f for f in coco_files(path) if looks_like_coco(f)]
    if not files:
        raise DatasetError(f"no COCO annotation file found at {path}", hint="give the instances .json file")
    root = path.parent if path.is_file() else path
    table, wlog = ClassTable(classes), WarningLog()
    samples: list[DenseSample] = []
    source: dict[int, int] = {}
    docs = [(f, _load_json(f)) for f in files]
    with_masks = _mask_mode(docs, instance_masks)
    for f, doc in docs:
        got, ids = _read_file(f, doc, root, table, wlog, with_masks)
        samples += got
        for idx, cid in ids.items():
            source.setdefault(idx, cid)
    cat_ids = [source.get(i, -1) for i in range(len(table.names))]
    task = "instance-segmentation" if with_masks else "detection"
    return DenseDataset(
        root=path, task=task, format="coco", classes=table.names, samples=samples,
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
    why = "image file not found (listed in metadata.jsonl)"
    found = listed_image([base / name] if name else [], wlog, str(base / name), why)
    if found is None:
        return None
    path, size = found
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
