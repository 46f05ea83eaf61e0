"""Image + index-mask folders (semantic segmentation).

Layouts: ``images/`` + ``masks/`` (or ``labels/``, ``annotations/``, ``gt/``), ``<split>/image`` + ``<split>/label``
(as the membrane data), ``images/<split>`` + ``masks/<split>``, and VOC ``JPEGImages/`` + ``SegmentationClass/``.
A mask pairs with the image of the same stem (``_mask``/``_label`` suffixes allowed). Masks are ``P`` (palette) or
``L`` PNGs whose values are class indices; ``ignore_index`` (255 by default, VOC's boundary) is not scored.
Classes come from ``classes.txt`` / ``class_names.txt`` / ``labels.txt`` (one per line, index = value), else from
the values found in the masks (0 = ``background``). Masks holding only 0 and 255 (``L``, as binary masks are
usually saved) are read as background/foreground (255 → 1, warning ``binary-mask-255``) unless
``binary_masks=False``. Masks are decoded only to learn their values (at most `MAX_MASK_SCAN`, evenly spread).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from advisor.dense.readers_common import (
    MASK_EXTS,
    WarningLog,
    dense_reader,
    find_file,
    header_size,
    images_in,
    read_names_file,
    rel_id,
    split_of,
)
from advisor.dense.types import DenseDataset, DenseSample
from advisor.errors import DatasetError

IMAGE_DIRS = ("images", "image", "imgs", "img", "JPEGImages")
MASK_DIRS = ("masks", "mask", "labels", "label", "annotations", "gt", "SegmentationClass", "segmentations")
NAMES_FILES = ("classes.txt", "class_names.txt", "labels.txt")
MASK_SUFFIXES = ("", "_mask", "_label", "-mask", "_gt", "_seg")
MAX_MASK_SCAN = 200


def _has_masks(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix.lower() in MASK_EXTS for p in folder.iterdir())


def _pair_in(folder: Path, split: str | None) -> list[tuple[Path, Path, str | None]]:
    imgs = [folder / d for d in IMAGE_DIRS if (folder / d).is_dir()]
    masks = [folder / d for d in MASK_DIRS if _has_masks(folder / d)]
    return [(imgs[0], masks[0], split)] if imgs and masks else []


def mask_pairs(path: Path) -> list[tuple[Path, Path, str | None]]:
    """``(images dir, masks dir, split)`` of a mask-folder dataset; empty when `path` is not one (cheap)."""
    if not path.is_dir():
        return []
    pairs = _pair_in(path, None)
    if pairs:
        img_dir, mask_dir, _ = pairs[0]
        subs = [d for d in sorted(img_dir.iterdir()) if d.is_dir() and split_of(d.name)]
        split_pairs = [
            (d, mask_dir / d.name, split_of(d.name)) for d in subs if _has_masks(mask_dir / d.name)
        ]
        return split_pairs or pairs
    for d in sorted(p for p in path.iterdir() if p.is_dir() and split_of(p.name)):
        pairs += _pair_in(d, split_of(d.name))
    if not pairs:  # images/<split> + masks/<split>
        for idir in (path / d for d in IMAGE_DIRS):
            for mdir in (path / d for d in MASK_DIRS):
                if idir.is_dir() and mdir.is_dir():
                    for sub in sorted(p for p in idir.iterdir() if p.is_dir() and split_of(p.name)):
                        if _has_masks(mdir / sub.name):
                            pairs.append((sub, mdir / sub.name, split_of(sub.name)))
    return pairs


def _mask_for(img: Path, img_dir: Path, mask_dir: Path) -> Path | None:
    rel = img.relative_to(img_dir).with_suffix("")
    stem, parent = rel.name, mask_dir / rel.parent
    return find_file(
        parent / f"{stem}{sfx}{ext}" for sfx in MASK_SUFFIXES for ext in (".png", ".bmp", ".tif", ".gif")
    )


def _scan_values(paths: list[Path], wlog: WarningLog) -> tuple[set[int], set[str], list[Path]]:
    """Values and modes of (at most `MAX_MASK_SCAN`, evenly spread) masks; the RGB masks found."""
    from PIL import Image

    pick = (
        paths
        if len(paths) <= MAX_MASK_SCAN
        else [paths[int(i)] for i in np.linspace(0, len(paths) - 1, MAX_MASK_SCAN)]
    )
    values: set[int] = set()
    modes: set[str] = set()
    rgb: list[Path] = []
    for p in pick:
        try:
            with Image.open(p) as im:
                if im.mode in ("RGB", "RGBA"):
                    rgb.append(p)
                    continue
                modes.add(im.mode)
                values.update(
                    int(v)
                    for v in np.unique(
                        np.asarray(im if im.mode in ("P", "L", "I", "I;16") else im.convert("L"))
                    )
                )
        except OSError as e:
            wlog.add("bad-annotation", f"{p.name}: {e}")
    return values, modes, rgb


def _classes(
    root: Path, mask_dir: Path, values: set[int], modes: set[str], ignore_index: int | None,
    binary_masks: bool | None, n_masks: int, wlog: WarningLog,
) -> tuple[list[str], dict[int, int]]:  # fmt: skip
    """Class names and the raw value → index map (binary 0/255 masks)."""
    f = find_file([root / n for n in NAMES_FILES] + [mask_dir.parent / n for n in NAMES_FILES])
    if f is not None:
        return read_names_file(f), {}
    binary = values <= {0, 255} and 255 in values and "P" not in modes
    if binary and binary_masks is not False:
        wlog.add("binary-mask-255", None, n_masks)
        wlog.note("binary-mask-255", "{n} masks hold only 0 and 255: " + _BINARY_NOTE)
        return ["background", "foreground"], {0: 0, 255: 1}
    if values <= {0, 1}:
        return ["background", "foreground"], {}
    real = [v for v in values if v != ignore_index]
    top = max(real, default=0)
    wlog.add("unnamed-classes", None, top)
    return ["background", *[f"class_{v}" for v in range(1, top + 1)]], {}


_BINARY_NOTE = (
    "read as binary, 0 = background, 255 = foreground (not ignore); "
    "load_dense(..., binary_masks=False) reads 255 as ignore"
)


def _undeclared(values: set[int], n_classes: int, ignore_index: int | None, lut: dict[int, int]) -> list[int]:
    known = set(lut) if lut else set(range(n_classes))
    return sorted(v for v in values if v not in known and v != ignore_index)


@dense_reader("mask-folder")
def read_mask_folder(
    path: Path, *, classes: Sequence[str] | None = None, ignore_index: int | None = 255,
    binary_masks: bool | None = None,
) -> DenseDataset:  # fmt: skip
    """Read an image + index-mask folder as a semantic-segmentation dataset (see the module docstring).

    Raises:
        DatasetError: no image/mask folder pair, or every mask is RGB.
    """
    pairs = mask_pairs(path)
    if not pairs:
        raise DatasetError(
            f"no image + mask folders in {path}", hint="use images/ + masks/ with index PNG masks"
        )
    wlog = WarningLog()
    found: list[tuple[Path, Path, str | None]] = []
    for img_dir, mask_dir, split in pairs:
        for img in images_in(img_dir, recursive=True):
            mask = _mask_for(img, img_dir, mask_dir)
            if mask is None:
                wlog.skip("missing-mask", str(img), f"no mask of the same name in {mask_dir.name}/")
            else:
                found.append((img, mask, split))
    values, modes, rgb = _scan_values([m for _, m, _ in found], wlog)
    for p in rgb:
        wlog.skip("rgb-mask", str(p), "an RGB mask: save class indices as a P or L PNG")
    found = [f for f in found if f[1] not in set(rgb)]
    if not found:
        raise DatasetError(
            f"no readable image + mask pairs in {path}", hint="masks must be index PNGs (P or L)"
        )
    lut: dict[int, int] = {}
    if classes is not None:
        names = list(classes)
    else:
        names, lut = _classes(path, pairs[0][1], values, modes, ignore_index, binary_masks, len(found), wlog)
    bad = _undeclared(values, len(names), ignore_index, lut)
    if bad:
        wlog.add("mask-value-undeclared", ", ".join(map(str, bad[:8])), len(bad))
        wlog.note("mask-value-undeclared", "{n} mask values are no declared class and not the ignore index")
    samples = [s for img, mask, split in found if (s := _sample(img, mask, path, split, wlog)) is not None]
    return DenseDataset(
        root=path, task="segmentation", format="mask-folder", classes=names, samples=samples,
        ignore_index=ignore_index, warnings=wlog.warnings(), skipped=wlog.skipped, mask_values=lut,
    )  # fmt: skip


def _sample(img: Path, mask: Path, root: Path, split: str | None, wlog: WarningLog) -> DenseSample | None:
    size, mask_size = header_size(img, wlog), header_size(mask, wlog)
    if size is None or mask_size is None:
        return None
    w, h = size
    if mask_size != size:
        wlog.skip("mask-size-mismatch", str(mask), f"mask {mask_size} vs image {size}")
        return None
    return DenseSample(
        id=rel_id(img, root), path=img.resolve(), width=w, height=h, mask_path=mask.resolve(), split=split
    )
