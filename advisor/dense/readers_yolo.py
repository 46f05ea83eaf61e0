"""YOLO txt reader: ``labels/*.txt`` beside ``images/`` (one ``class cx cy w h`` line per box, normalised 0–1).

Layouts: ``images/{train,val}`` + ``labels/{train,val}``, ``images/`` + ``labels/``, ``{train,val}/images`` +
``{train,val}/labels`` (Roboflow), or the folders a ``data.yaml`` names. Class names from ``data.yaml`` ``names``
(list or ``{id: name}``), else ``classes.txt`` / ``obj.names``, else the ids (noted). YOLO-seg lines (``class x1 y1
x2 y2 ...``, normalised polygon points): when at least half of the lines are polygons (or when asked), the data is
read as instance segmentation (each object keeps its polygon in pixels as its mask; a box line gets its box as the
mask, counted); otherwise as the polygon's box (``polygon-as-box``). Image sizes come from the file headers (no
decoding).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from advisor.dense.instance_masks import InstanceMasks, Segmentation, box_polygon
from advisor.dense.readers_common import (
    WarningLog,
    box_sample,
    dense_reader,
    find_file,
    header_size,
    images_in,
    read_names_file,
    split_of,
)
from advisor.dense.types import DenseDataset, DenseSample
from advisor.errors import DatasetError

log = logging.getLogger(__name__)

_YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
MASK_SHARE = 0.5  # share of polygon lines from which YOLO data is read as instance segmentation
PEEK_FILES = 64  # label files read by `yolo_task` (task detection stays cheap)


def _has_txt(folder: Path) -> bool:
    return folder.is_dir() and next(folder.rglob("*.txt"), None) is not None


def yolo_yaml(path: Path) -> Path | None:
    """The dataset YAML of a YOLO folder (``data.yaml`` ...), or the path itself when it is one."""
    if path.is_file():
        return path if path.suffix.lower() in (".yaml", ".yml") else None
    return find_file(path / n for n in _YAML_NAMES)


def _load_yaml(file: Path) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DatasetError(f"cannot read {file}: {e}", hint="check the YAML syntax") from e
    return doc if isinstance(doc, dict) else {}


def _yaml_names(doc: dict[str, Any]) -> list[str] | None:
    names = doc.get("names")
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict):
        try:
            items = sorted((int(k), str(v)) for k, v in names.items())
        except (TypeError, ValueError):
            return None
        return [dict(items).get(i, str(i)) for i in range(items[-1][0] + 1)] if items else []
    return None


def _labels_dir(images: Path) -> Path:
    """``…/images/…`` → ``…/labels/…`` (the last ``images`` part), as YOLO finds labels."""
    parts = list(images.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts)
    return images.parent / "labels"


def yolo_pairs(path: Path) -> list[tuple[Path, Path, str | None]]:
    """``(images dir, labels dir, split)`` of a YOLO dataset; empty when `path` is not one (cheap)."""
    yml = yolo_yaml(path)
    root = path.parent if path.is_file() else path
    pairs: list[tuple[Path, Path, str | None]] = []
    if yml is not None:
        doc = _load_yaml(yml)
        base = Path(str(doc.get("path") or "."))
        base = base if base.is_absolute() else (yml.parent / base)
        for key in ("train", "val", "test"):
            value = doc.get(key)
            for entry in value if isinstance(value, list) else [value]:
                if isinstance(entry, str) and (d := base / entry).is_dir():
                    pairs.append((d, _labels_dir(d), key))
    if not pairs and (root / "images").is_dir():
        subs = [p for p in sorted((root / "images").iterdir()) if p.is_dir() and split_of(p.name)]
        pairs = [(d, root / "labels" / d.name, split_of(d.name)) for d in subs] or [
            (root / "images", root / "labels", None)
        ]
    if not pairs:
        for d in (
            sorted(p for p in root.iterdir() if p.is_dir() and split_of(p.name)) if root.is_dir() else []
        ):
            if (d / "images").is_dir():
                pairs.append((d / "images", d / "labels", split_of(d.name)))
    return [p for p in pairs if _has_txt(p[1])]


def _names(path: Path, pairs: list[tuple[Path, Path, str | None]]) -> list[str] | None:
    yml = yolo_yaml(path)
    if yml is not None and (names := _yaml_names(_load_yaml(yml))) is not None:
        return names
    root = path.parent if path.is_file() else path
    cands = [root / "classes.txt", root / "obj.names", root / "labels" / "classes.txt"]
    cands += [lab / "classes.txt" for _, lab, _ in pairs]
    f = find_file(cands)
    return read_names_file(f) if f is not None else None


def _is_polygon(line: str) -> bool:
    """A YOLO-seg line: a class and at least three normalised points."""
    n = len(line.split()) - 1
    return n >= 6 and n % 2 == 0


def _parse_line(
    line: str, w: int, h: int, wlog: WarningLog, where: str, with_masks: bool = False
) -> tuple[int, list[float], Segmentation | None] | None:
    """``(class id, xyxy pixels, polygon in pixels or None)`` of one label line; None when unreadable. The polygon
    is kept only `with_masks` (else counted as ``polygon-as-box``)."""
    parts = line.split()
    try:
        cls, nums = int(float(parts[0])), [float(v) for v in parts[1:]]
    except (ValueError, IndexError):
        wlog.add("bad-annotation", where)
        return None
    if len(nums) == 4:
        cx, cy, bw, bh = nums
        return cls, [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], None
    if len(nums) >= 6 and len(nums) % 2 == 0 and np.isfinite(nums).all():
        pts = np.asarray(nums).reshape(-1, 2) * (w, h)
        box = [pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()]
        if not with_masks:
            wlog.add("polygon-as-box", where)
            return cls, [float(v) for v in box], None
        return cls, [float(v) for v in box], [[float(v) for v in pts.reshape(-1)]]
    wlog.add("bad-annotation", where)
    return None


def _label_lines(label: Path, wlog: WarningLog) -> list[str]:
    if not label.is_file():
        return []
    try:
        return label.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        wlog.add("bad-annotation", label.name)
        return []


def _yolo_sample(
    img: Path, label: Path, root: Path, n_classes: int | None, wlog: WarningLog, split: str | None,
    with_masks: bool = False,
) -> DenseSample | None:  # fmt: skip
    size = header_size(img, wlog)
    if size is None:
        return None
    w, h = size
    rows, labels = [], []
    segs: list[Segmentation] = []
    lines = _label_lines(label, wlog)
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        got = _parse_line(line, w, h, wlog, f"{label.name}:{n}", with_masks)
        if got is None:
            continue
        if got[0] < 0 or (n_classes is not None and got[0] >= n_classes):
            wlog.add("unknown-class", f"{label.name}:{n}: class {got[0]}")
            continue
        labels.append(got[0])
        rows.append(got[1])
        if with_masks:
            if got[2] is None:
                wlog.add("box-as-mask", f"{label.name}:{n}")
            segs.append(got[2] if got[2] is not None else box_polygon(got[1]))
    if not rows and not any(ln.strip() for ln in lines):
        wlog.add("unlabelled-image", img.name)
    masks = InstanceMasks(h, w, tuple(segs)) if with_masks else None
    return box_sample(img, root, (w, h), rows, labels, wlog, label.name, split=split, masks=masks)


def yolo_polygon_share(pairs: list[tuple[Path, Path, str | None]], max_files: int | None = None) -> float:
    """The share of polygon (YOLO-seg) lines among the label lines of `pairs` (the first `max_files` label files
    of each folder when given); 0 without lines."""
    n_poly = n_all = 0
    for _img_dir, lab_dir, _split in pairs:
        files = sorted(lab_dir.rglob("*.txt"))
        for lab in files[:max_files] if max_files else files:
            if lab.name == "classes.txt":
                continue
            for line in _label_lines(lab, WarningLog()):
                if line.strip():
                    n_all += 1
                    n_poly += _is_polygon(line)
    return n_poly / n_all if n_all else 0.0


def yolo_task(pairs: list[tuple[Path, Path, str | None]]) -> str:
    """``instance-segmentation`` when at least `MASK_SHARE` of the label lines (of the first `PEEK_FILES` files
    per folder) are polygons, else ``detection``."""
    seg = yolo_polygon_share(pairs, PEEK_FILES) >= MASK_SHARE
    return "instance-segmentation" if seg else "detection"


@dense_reader("yolo")
def read_yolo(
    path: Path, *, classes: Sequence[str] | None = None, instance_masks: bool | None = None
) -> DenseDataset:
    """Read a YOLO txt dataset (see the module docstring for the layouts) as detection or instance segmentation.

    Args:
        path: the dataset folder or its ``data.yaml``.
        classes: the class names (index = class id).
        instance_masks: True keeps the YOLO-seg polygons as masks (instance segmentation), False reads boxes only;
            None: masks when at least half of the label lines are polygons.

    Raises:
        DatasetError: no ``labels/`` folder with ``.txt`` files beside an ``images/`` folder, or masks asked for
            and no polygon line found.
    """
    pairs = yolo_pairs(path)
    if not pairs:
        raise DatasetError(
            f"no YOLO labels/ beside images/ in {path}", hint="give the folder holding data.yaml"
        )
    root = path.parent if path.is_file() else path
    names = list(classes) if classes is not None else _names(path, pairs)
    share = yolo_polygon_share(pairs)
    if instance_masks and share == 0:
        raise DatasetError(
            f"{path}: no YOLO-seg polygon line (class x1 y1 x2 y2 ...): boxes only",
            hint="read it as detection (--task detection), or label polygons",
        )
    with_masks = share >= MASK_SHARE if instance_masks is None else instance_masks
    wlog = WarningLog()
    samples = []
    for img_dir, lab_dir, split in pairs:
        imgs = images_in(img_dir, recursive=True)
        stems = {i.relative_to(img_dir).with_suffix("").as_posix() for i in imgs}
        for lab in sorted(lab_dir.rglob("*.txt")):
            stem = lab.relative_to(lab_dir).with_suffix("").as_posix()
            if stem not in stems and lab.name != "classes.txt":
                wlog.skip("missing-image", str(lab), "label file without an image")
        for img in imgs:
            label = lab_dir / img.relative_to(img_dir).with_suffix(".txt")
            s = _yolo_sample(img, label, root, len(names) if names else None, wlog, split, with_masks)
            if s is not None:
                samples.append(s)
    if not names:
        top = max((int(s.labels.max()) for s in samples if len(s.labels)), default=-1)
        names = [str(i) for i in range(top + 1)]
        wlog.add("unnamed-classes", None, len(names))
    return DenseDataset(
        root=path, task="instance-segmentation" if with_masks else "detection", format="yolo", classes=names, samples=samples, warnings=wlog.warnings(),
        skipped=wlog.skipped,
    )  # fmt: skip
