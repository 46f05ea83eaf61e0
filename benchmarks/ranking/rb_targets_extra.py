"""Image targets of the ranking benchmark v2 made from dense or texture assets, written as class folders
(``train/<class>/*.png``, ``test/<class>/*.png``) under the benchmark cache and read back by `advisor.data`:

- ``bccd_crops``: the ground-truth boxes of BCCD (blood-cell detection, Pascal VOC XML) cropped with 10 % context;
  classes RBC / WBC / Platelets; the dataset's own image split (trainval → train, test → test), so no image gives
  crops to both sides; degenerate boxes (zero width or height) are skipped and counted.
- ``membrane_patches``: 64×64 patches of the ISBI-2012 membrane EM images (``train/image`` + ``train/label``), labelled
  by the centre pixel (membrane = label 0, cell = 255); images 0–19 give the train patches, 20–29 the test patches.
- ``textures``: 20×20 patches (small enough that the task is not saturated) of five grey scikit-image pictures with a texture (brick, grass, gravel, moon surface,
  immunohistochemistry stain, the last converted to grey); train patches from the top half of each picture, test
  patches from the bottom half (spatially disjoint).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np


def _save(img, path: Path) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    img.save(tmp)
    os.replace(tmp, path)


def write_bccd_crops(assets: Path, root: Path) -> dict:
    """Box crops of BCCD by the dataset's image split; returns counts (written, degenerate skipped)."""
    from PIL import Image

    base = assets / "detection" / "bccd" / "BCCD"
    main = base / "ImageSets" / "Main"
    split_of = {}
    for split, fname in (("train", "trainval.txt"), ("test", "test.txt")):
        for line in (main / fname).read_text().split():
            split_of[line.strip()] = split
    counts = {"written": 0, "degenerate": 0}
    for xml in sorted((base / "Annotations").glob("*.xml")):
        split = split_of.get(xml.stem)
        if split is None:
            continue
        tree = ET.parse(xml)  # noqa: S314 - the benchmark's own copy of a public dataset
        im = Image.open(base / "JPEGImages" / f"{xml.stem}.jpg").convert("RGB")
        for i, obj in enumerate(tree.findall("object")):
            name = obj.findtext("name", "").strip()
            bb = obj.find("bndbox")
            if bb is None or not name:
                continue
            x0, y0, x1, y1 = (float(bb.findtext(k, "0")) for k in ("xmin", "ymin", "xmax", "ymax"))
            if x1 - x0 < 2 or y1 - y0 < 2:
                counts["degenerate"] += 1
                continue
            mx, my = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
            box = (max(0, x0 - mx), max(0, y0 - my), min(im.width, x1 + mx), min(im.height, y1 + my))
            _save(im.crop(tuple(int(round(v)) for v in box)), root / split / name / f"{xml.stem}_{i:02d}.png")
            counts["written"] += 1
    return counts


def write_membrane_patches(
    assets: Path, root: Path, per_class_train: int = 200, per_class_test: int = 120
) -> dict:
    """Centre-pixel-labelled 64×64 patches: images 0–19 → train, 20–29 → test (seeded positions, balanced)."""
    from PIL import Image

    base = assets / "segmentation" / "membrane" / "data" / "membrane" / "train"
    rng = np.random.default_rng(2024)
    half = 32
    counts = {}
    for split, ids, per_class in (
        ("train", range(20), per_class_train),
        ("test", range(20, 30), per_class_test),
    ):
        per_image = -(-per_class // len(ids))
        for idx in ids:
            img = np.asarray(Image.open(base / "image" / f"{idx}.png").convert("L"))
            lab = np.asarray(Image.open(base / "label" / f"{idx}.png").convert("L")) > 127
            inner = lab[half:-half, half:-half]
            for cls, want in (("membrane", False), ("cell", True)):
                ys, xs = np.nonzero(inner == want)
                pick = rng.choice(len(ys), size=min(per_image, len(ys)), replace=False)
                for j, p in enumerate(pick):
                    y, x = ys[p] + half, xs[p] + half
                    patch = Image.fromarray(img[y - half : y + half, x - half : x + half])
                    _save(patch, root / split / cls / f"{idx:02d}_{j:03d}.png")
                    counts[f"{split}/{cls}"] = counts.get(f"{split}/{cls}", 0) + 1
    return counts


TEXTURES = ("brick", "grass", "gravel", "moon", "immunohistochemistry")


def write_texture_patches(
    root: Path, per_class_train: int = 120, per_class_test: int = 60, size: int = 20
) -> dict:
    """20×20 grey patches: train from the top half of each picture, test from the bottom half (seeded)."""
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(7)
    counts = {}
    for name in TEXTURES:
        a = getattr(skimage.data, name)()
        if a.ndim == 3:
            a = (a[..., :3] @ np.array([0.299, 0.587, 0.114])).round().clip(0, 255).astype(np.uint8)
        h, w = a.shape
        for split, (y_lo, y_hi), n in (
            ("train", (0, h // 2), per_class_train),
            ("test", (h // 2, h), per_class_test),
        ):
            for j in range(n):
                y = int(rng.integers(y_lo, y_hi - size + 1))
                x = int(rng.integers(0, w - size + 1))
                _save(Image.fromarray(a[y : y + size, x : x + size]), root / split / name / f"{j:04d}.png")
            counts[f"{split}/{name}"] = n
    return counts
