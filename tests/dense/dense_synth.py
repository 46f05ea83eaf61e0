"""Tiny generated dense datasets for the tests, one writer per format (all small PNG/JPEG images in a folder).

Each writer returns the dataset root and documents exactly what it wrote, so tests can assert exact counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 64, 48


def write_image(path: Path, size: tuple[int, int] = (W, H), seed: int = 0) -> Path:
    """A small RGB noise image (PNG or JPEG by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def write_coco(root: Path) -> Path:
    """COCO: 4 images listed (a.png 2 boxes + 1 polygon-only + 1 crowd + 1 degenerate + 1 out-of-image; b.png no
    annotations; c.png one box; missing.png not on disk); annotation ids from 0; category 0 ``_background_``
    (unused), 1 cat, 2 dog. Kept boxes: a 5 (cat 3 incl. crowd, dog 2), c 1 (dog)."""
    for i, n in enumerate(("a.png", "b.png", "c.png")):
        write_image(root / "images" / n, seed=i)
    images = [
        {"id": 10, "file_name": "a.png", "width": W, "height": H},
        {"id": 11, "file_name": "b.png", "width": W, "height": H},
        {"id": 12, "file_name": "c.png"},  # no size: read from the header
        {"id": 13, "file_name": "missing.png", "width": W, "height": H},
    ]
    anns = [
        {"id": 0, "image_id": 10, "category_id": 1, "bbox": [1, 2, 10, 10], "area": 80.0, "iscrowd": 0},
        {"id": 1, "image_id": 10, "category_id": 2, "bbox": [20, 5, 20, 30], "iscrowd": 0},
        {
            "id": 2,
            "image_id": 10,
            "category_id": 2,
            "segmentation": [[5, 5, 15, 5, 15, 25, 5, 25]],
            "iscrowd": 0,
        },
        {"id": 3, "image_id": 10, "category_id": 1, "bbox": [0, 0, 30, 30], "iscrowd": 1},
        {"id": 4, "image_id": 10, "category_id": 1, "bbox": [3, 3, 0, 5], "iscrowd": 0},
        {"id": 5, "image_id": 10, "category_id": 1, "bbox": [50, 40, 30, 30], "iscrowd": 0},
        {"id": 6, "image_id": 12, "category_id": 2, "bbox": [1, 1, 5, 5], "iscrowd": 0},
        {"id": 7, "image_id": 13, "category_id": 2, "bbox": [1, 1, 5, 5], "iscrowd": 0},
    ]
    cats = [{"id": 0, "name": "_background_"}, {"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    (root / "annotations.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats})
    )
    return root


def write_voc(root: Path) -> Path:
    """VOC: 3 XMLs (img0: 2 RBC + 1 WBC difficult; img1: 1 Platelets + 1 zero-width box; img2: image missing) and a
    broken XML; splits img0 train, img1 val."""
    objs = {
        "img0": [("RBC", 1, 1, 10, 10, 0), ("RBC", 5, 5, 30, 30, 0), ("WBC", 10, 10, 40, 40, 1)],
        "img1": [("Platelets", 2, 2, 8, 8, 0), ("RBC", 7, 3, 7, 9, 0)],
        "img2": [("RBC", 1, 1, 4, 4, 0)],
    }
    (root / "Annotations").mkdir(parents=True)
    for stem, boxes in objs.items():
        if stem != "img2":
            write_image(root / "JPEGImages" / f"{stem}.jpg")
        body = "".join(
            f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
            f"<xmax>{c}</xmax><ymax>{e}</ymax></bndbox></object>"
            for n, a, b, c, e, d in boxes
        )
        xml = (
            f"<annotation><filename>{stem}.jpg</filename><size><width>{W}</width><height>{H}</height></size>"
        )
        (root / "Annotations" / f"{stem}.xml").write_text(xml + body + "</annotation>")
    (root / "Annotations" / "broken.xml").write_text("<annotation><filename>")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("img0\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("img1\n")
    return root


def write_yolo(root: Path) -> Path:
    """YOLO: images/train/{a,b}.png, images/val/c.png; labels: a 2 boxes + 1 seg polygon, b missing (unlabelled),
    c 1 box + 1 bad line + 1 class out of range; labels/train/orphan.txt without an image; names {0: car, 1: bus}."""
    for split, names in (("train", ("a", "b")), ("val", ("c",))):
        for n in names:
            write_image(root / "images" / split / f"{n}.png")
    lab = root / "labels"
    (lab / "train").mkdir(parents=True)
    (lab / "val").mkdir(parents=True)
    (lab / "train" / "a.txt").write_text(
        "0 0.5 0.5 0.25 0.5\n1 0.25 0.25 0.125 0.25\n1 0.1 0.1 0.3 0.1 0.3 0.4\n"
    )
    (lab / "val" / "c.txt").write_text("1 0.5 0.5 0.5 0.5\nnot a line\n7 0.5 0.5 0.1 0.1\n")
    (lab / "train" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\nnames:\n  0: car\n  1: bus\n"
    )
    return root


def write_csv(root: Path, *, xywh: bool = False) -> Path:
    """Box CSV: a.png 2 boxes (cat, dog), b.png listed without a box, gone.png missing."""
    write_image(root / "a.png")
    write_image(root / "b.png")
    head = "filename,x,y,w,h,class" if xywh else "filename,xmin,ymin,xmax,ymax,class"
    rows = (
        ["a.png,1,1,10,10,cat", "a.png,20,20,10,10,dog"]
        if xywh
        else ["a.png,1,1,11,11,cat", "a.png,20,20,30,30,dog"]
    )
    rows += ["b.png,,,,,", "gone.png,1,1,5,5,cat"]
    (root / "boxes.csv").write_text("\n".join([head, *rows]) + "\n")
    return root / "boxes.csv"


def write_hf(root: Path) -> Path:
    """HF imagefolder: train/metadata.jsonl, 2 images, 3 objects (categories 0, 1, 1) with classes.txt."""
    for n in ("x.png", "y.png"):
        write_image(root / "train" / n)
    recs = [
        {"file_name": "x.png", "objects": {"bbox": [[1, 1, 10, 10], [5, 5, 20, 20]], "categories": [0, 1]}},
        {"file_name": "y.png", "objects": {"bbox": [[2, 2, 8, 8]], "categories": [1]}},
    ]
    (root / "train" / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    (root / "classes.txt").write_text("person\ncar\n")
    return root


def write_masks(root: Path, *, binary: bool = False, n: int = 3) -> Path:
    """images/ + masks/ of `n` images. Index masks: P mode, values 0 (top), 1 (left half), 2 (a block), 255 (a
    border line) with classes.txt background/road/car; binary: L mode 0/255 (right half foreground), no names."""
    for i in range(n):
        write_image(root / "images" / f"m{i}.png", seed=i)
        m = np.zeros((H, W), dtype=np.uint8)
        if binary:
            m[:, W // 2 :] = 255
            Image.fromarray(m, mode="L").save(_mk(root / "masks" / f"m{i}.png"))
            continue
        m[H // 2 :, : W // 2] = 1
        m[5:15, 40:60] = 2
        m[0, :] = 255
        im = Image.fromarray(m, mode="P")
        im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0, 0, 0] * 252 + [224, 224, 192])
        im.save(_mk(root / "masks" / f"m{i}.png"))
    if not binary:
        (root / "classes.txt").write_text("background\nroad\ncar\n")
    return root


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
