"""Shared pieces of the dense readers: the warning log, box cleaning, image headers, class tables, file finding.

Nothing here decodes an image: sizes come from the annotation or from the file header (`PIL.Image.open` reads
only the header until the pixels are asked for).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advisor.dense.instance_masks import InstanceMasks
from advisor.dense.types import (
    DenseDataset,
    DenseSample,
    DenseWarning,
    class_index,
    empty_boxes,
    empty_labels,
)
from advisor.errors import DatasetError
from advisor.registry import add_unique

log = logging.getLogger(__name__)

IMAGE_EXTS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
)
MASK_EXTS: frozenset[str] = frozenset({".png", ".bmp", ".tif", ".tiff", ".gif"})
MAX_EXAMPLES = 5

DenseReader = Callable[..., DenseDataset]
# format name -> reader(root, *, classes=None, ...); filled by `dense_reader` in the readers_* modules
DENSE_READERS: dict[str, DenseReader] = {}


def dense_reader(name: str) -> Callable[[DenseReader], DenseReader]:
    """Register a dense reader under the format `name` (``DenseDataset.format``).

    Raises:
        ValueError: `name` is already registered.
    """

    def add(fn: DenseReader) -> DenseReader:
        add_unique(DENSE_READERS, name, fn, "dense reader")
        return fn

    return add


# code -> one line saying what it is and what advisor did; "{n}" is the count
MESSAGES: dict[str, str] = {
    "degenerate-box": "{n} boxes with zero or negative width/height: dropped",
    "out-of-image-box": "{n} boxes reach outside their image: clipped to the image",
    "annotation-id-0": "annotation ids start at 0 (in {n} file(s)): the metrics re-index them from 1",
    "category-0": "{n} category with id 0 (often '_background_'): see the message examples",
    "crowd": "{n} crowd boxes (iscrowd/difficult): kept, ignored by matching as COCO does, not counted as objects",
    "polygon-as-box": "{n} polygon/RLE instance annotations: read as their boxes (detection)",
    "box-as-mask": "{n} objects without an instance mask (instance segmentation): their box used as the mask",
    "bad-mask": "{n} instance masks that cannot be read (malformed, or an RLE of another size): their box used",
    "unlabelled-image": "{n} images without annotations",
    "missing-image": "{n} annotated images whose file is missing: skipped",
    "unknown-class": "{n} objects of a class not in the class list: dropped",
    "bad-annotation": "{n} annotations that cannot be read: skipped",
    "unnamed-classes": "{n} classes have no names (no classes file): named by their index",
    "binary-mask-255": (
        "{n} masks hold only 0 and 255: read as binary, 0 = background, 255 = foreground (not ignore); "
        "pass binary_masks=False to treat 255 as ignore"
    ),
    "mask-value-undeclared": "{n} masks hold values that are no declared class and not the ignore index",
    "mask-size-mismatch": "{n} masks differ in size from their image: skipped",
    "rgb-mask": "{n} masks are RGB colour images, not index PNGs (P or L): skipped",
    "missing-mask": "{n} images without a mask: skipped (segmentation needs one per image)",
    "unreadable-image": "{n} image files whose header cannot be read: skipped",
}


@dataclass
class WarningLog:
    """Counts named problems while reading; `warnings()` turns them into `DenseWarning` records."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add(self, code: str, example: str | None = None, n: int = 1) -> None:
        """Count `n` occurrences of `code`; keep `example` (a file name / id) among the first few."""
        if n <= 0:
            return
        self.counts[code] = self.counts.get(code, 0) + n
        ex = self.examples.setdefault(code, [])
        if example is not None and len(ex) < MAX_EXAMPLES and example not in ex:
            ex.append(example)

    def skip(self, code: str, path: str, reason: str) -> None:
        """An image left out: counted under `code` and listed in `skipped`."""
        self.add(code, Path(path).name)
        self.skipped.append((path, reason))

    def note(self, code: str, message: str) -> None:
        """Replace the standard message of `code` by `message` (``{n}`` is the count)."""
        self.notes[code] = message

    def warnings(self) -> list[DenseWarning]:
        """The counted warnings, in the order first seen."""
        out = []
        for code, n in self.counts.items():
            template = self.notes.get(code) or MESSAGES.get(code, "{n} " + code)
            out.append(DenseWarning(code, n, template.format(n=n), tuple(self.examples.get(code, ()))))
        return out


def clean_boxes(
    boxes: np.ndarray, width: int, height: int, wlog: WarningLog, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Clip boxes to the image and find the degenerate ones.

    Args:
        boxes: ``(N, 4)`` xyxy.
        width, height: the image size (0: unknown, no clipping).
        wlog: counts ``out-of-image-box`` and ``degenerate-box``.
        where: the file / image id named in the examples.

    Returns:
        The clipped float32 boxes and a ``(N,)`` bool mask of the boxes to keep.
    """
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if len(b) == 0:
        return empty_boxes(), np.zeros(0, dtype=bool)
    keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1]) & np.isfinite(b).all(axis=1)
    wlog.add("degenerate-box", where, int((~keep).sum()))
    if width > 0 and height > 0:
        outside = keep & ((b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > width) | (b[:, 3] > height))
        wlog.add("out-of-image-box", where, int(outside.sum()))
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
        gone = keep & (
            (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
        )  # wholly outside: nothing left after clipping
        wlog.add("degenerate-box", where, int(gone.sum()))
        keep &= ~gone
    return b, keep


def header_size(path: Path, wlog: WarningLog) -> tuple[int, int] | None:
    """``(width, height)`` from the header, or None with a counted ``unreadable-image`` skip."""
    try:
        return image_size(path)
    except DatasetError as e:
        wlog.skip("unreadable-image", str(path), e.message)
        return None


def annotated_size(path: Path, wlog: WarningLog, width: Any, height: Any) -> tuple[int, int] | None:
    """``(width, height)`` as the annotations give them when both read as positive integers, else from the image
    header (`header_size`: None with a counted ``unreadable-image`` skip)."""
    try:
        w, h = int(width), int(height)
    except (TypeError, ValueError, OverflowError):  # missing, not a number, infinite
        w = h = 0
    return (w, h) if w > 0 and h > 0 else header_size(path, wlog)


def listed_image(
    candidates: Iterable[Path],
    wlog: WarningLog,
    where: str,
    why: str,
    width: Any = None,
    height: Any = None,
) -> tuple[Path, tuple[int, int]] | None:
    """The image an annotation lists, with its ``(width, height)``: the first existing file among `candidates`,
    sized by `annotated_size` (no annotated size: the header's).

    Args:
        candidates: where the image may be, in order.
        wlog: counts the image left out.
        where, why: the path and reason of the ``missing-image`` skip when no candidate exists.
        width, height: the size the annotation states, if any.

    Returns:
        ``(path, (width, height))``, or None when the image is missing (a counted ``missing-image`` skip) or its
        header unreadable (a counted ``unreadable-image`` skip).
    """
    path = find_file(candidates)
    if path is None:
        wlog.skip("missing-image", where, why)
        return None
    size = annotated_size(path, wlog, width, height)
    return None if size is None else (path, size)


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the image file header (no decoding).

    Raises:
        DatasetError: the file is not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.width), int(im.height)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DatasetError(
            f"cannot read the image header of {path}: {e}", hint="replace or remove the file"
        ) from e


class ClassTable:
    """Class names → indices: a fixed list (given or declared; unknown names are refused) or one that grows."""

    def __init__(self, names: Sequence[str] | None = None) -> None:
        self.fixed = names is not None
        self.names: list[str] = list(names or [])
        self._index = class_index(self.names)

    def index(self, name: str) -> int | None:
        """The index of `name` (normalised match), adding it when the table grows; None when unknown."""
        key = " ".join(str(name).replace("_", " ").replace("-", " ").lower().split())
        if key in self._index:
            return self._index[key]
        if self.fixed:
            return None
        self.names.append(str(name).strip())
        self._index[key] = len(self.names) - 1
        return self._index[key]

    def sorted_remap(self) -> tuple[list[str], np.ndarray]:
        """A growing table's names sorted (stable, case-insensitive) and the old index → new index map."""
        if self.fixed:
            return self.names, np.arange(len(self.names), dtype=np.int64)
        order = sorted(range(len(self.names)), key=lambda i: self.names[i].lower())
        remap = np.zeros(len(self.names), dtype=np.int64)
        for new, old in enumerate(order):
            remap[old] = new
        return [self.names[i] for i in order], remap


def labels_array(values: Iterable[int]) -> np.ndarray:
    """An int64 ``(N,)`` label array."""
    arr = np.asarray(list(values), dtype=np.int64)
    return arr if arr.size else empty_labels()


def box_sample(
    path: Path,
    root: Path,
    size: tuple[int, int],
    rows: Sequence[Sequence[float]],
    labels: Sequence[int],
    wlog: WarningLog,
    where: str,
    *,
    split: str | None = None,
    crowd: Sequence[bool] | None = None,
    areas: Sequence[float] | None = None,
    source_id: int | str | None = None,
    masks: InstanceMasks | None = None,
) -> DenseSample:
    """The sample of image `path` with boxes `rows` (xyxy pixels) and their `labels`, the boxes cleaned.

    Args:
        path: the image file; its id is its path relative to `root`.
        size: ``(width, height)`` of the image.
        rows, labels: one box and one class index per object read.
        wlog: counts what `clean_boxes` drops or clips, and the kept ``crowd`` boxes, under `where`.
        where: the annotation file / image named in the warning examples.
        split, source_id: copied to the sample.
        crowd: per-box crowd flags (None: the format has none).
        areas: per-box annotated areas, NaN where unknown (then the clipped box area); None: the format has none.
        masks: instance segmentation: one mask per row (kept with its box); None: no masks.
    """
    w, h = size
    boxes, keep = clean_boxes(np.asarray(rows, dtype=np.float32), w, h, wlog, where)
    lab = labels_array(labels)
    crowd_arr = None
    if crowd is not None:
        crowd_arr = np.asarray(crowd, dtype=bool)[keep]
        wlog.add("crowd", where, int(crowd_arr.sum()))
    area_arr = None
    if areas is not None:
        area_arr = np.asarray(areas, dtype=np.float64)
        missing = np.isnan(area_arr)
        area_arr[missing] = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[missing]
        area_arr = area_arr[keep]
    return DenseSample(
        id=rel_id(path, root), path=path.resolve(), width=w, height=h, boxes=boxes[keep],
        labels=lab[keep] if len(lab) else lab, crowd=crowd_arr, split=split, areas=area_arr, source_id=source_id,
        masks=None if masks is None else masks.select(keep),
    )  # fmt: skip


def images_in(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Image files in `folder` (sorted; hidden files left out)."""
    if not folder.is_dir():
        return []
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p for p in it if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".") and p.is_file()
    )


def read_names_file(path: Path) -> list[str]:
    """Class names from a one-per-line file (labelme's ``__ignore__`` line and blank lines left out)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise DatasetError(
            f"cannot read the class names file {path}: {e}", hint="check its permissions"
        ) from e
    return [ln.strip() for ln in lines if ln.strip() and ln.strip() != "__ignore__"]


def rel_id(path: Path, root: Path) -> str:
    """The POSIX path of `path` relative to `root` (the file name when it is outside)."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def find_file(candidates: Iterable[Path]) -> Path | None:
    """The first existing file among `candidates`."""
    for c in candidates:
        if c.is_file():
            return c
    return None


SPLIT_NAMES: dict[str, str] = {
    "train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "test": "test",
    "testing": "test", "train2017": "train", "val2017": "val", "test2017": "test",
}  # fmt: skip


def split_of(name: str) -> str | None:
    """``train``/``val``/``test`` for a folder or file name that says so (``instances_val2017`` → val)."""
    low = name.lower()
    if low in SPLIT_NAMES:
        return SPLIT_NAMES[low]
    for part in low.replace("-", "_").split("_"):
        if part in SPLIT_NAMES:
            return SPLIT_NAMES[part]
    return None
