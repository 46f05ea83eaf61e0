"""The bundled dense demos: small multi-object datasets built from the packaged Fashion-MNIST images.

`advisor recommend --demo detection` / ``--demo segmentation`` run on these. Each image is a 160×160 canvas with a
smooth coloured background and noise, on which 1–4 Fashion-MNIST items of three classes (bag, sneaker, trouser)
are pasted at random scales (1–2.5×) and places. An item's box is the tight box of its visible pixels; its mask is
the pixels brighter than a threshold. Detection is written as COCO JSON (``annotations.json`` + ``images/``),
segmentation as an image + index-mask folder (``images/`` + ``masks/``, 0 = background). The build is seeded and
deterministic and kept in the cache (``cache_dir("demo")``); a damaged or partial build is rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from advisor.demo import demo_dataset_path

DEMO_CLASSES: tuple[str, ...] = ("bag", "sneaker", "trouser")
DEMO_VERSION = 1
CANVAS = 160
N_IMAGES = 72
_SEED = 20261202
_MASK_THRESHOLD = 40  # pixel value (0-255) above which an item's pixel belongs to its mask


def _items() -> dict[str, list[np.ndarray]]:
    """The packaged 28×28 grey items of each demo class."""
    from PIL import Image

    root = demo_dataset_path()
    out: dict[str, list[np.ndarray]] = {}
    for name in DEMO_CLASSES:
        files = sorted((root / name).glob("*.png"))
        out[name] = [np.asarray(Image.open(f).convert("L")) for f in files]
    return out


def _background(rng: np.random.Generator) -> np.ndarray:
    """A smooth two-colour gradient with noise, ``(CANVAS, CANVAS, 3)`` float."""
    a, b = rng.uniform(20, 150, size=3), rng.uniform(20, 150, size=3)
    t = np.linspace(0.0, 1.0, CANVAS)[None, :, None]
    grad = a * (1 - t) + b * t
    img = np.broadcast_to(grad, (CANVAS, CANVAS, 3)).copy()
    return np.asarray(img + rng.normal(0, 8, size=img.shape))


def _paste(canvas: np.ndarray, inst: np.ndarray, item: np.ndarray, k: int, rng: np.random.Generator) -> None:
    """Paste one item (scaled, tinted) onto `canvas` and write instance number `k` into `inst` where visible."""
    from PIL import Image

    scale = rng.uniform(1.0, 2.5)
    size = int(round(28 * scale))
    grey = np.asarray(Image.fromarray(item).resize((size, size), Image.Resampling.BILINEAR), dtype=np.float64)
    x0, y0 = int(rng.integers(0, CANVAS - size + 1)), int(rng.integers(0, CANVAS - size + 1))
    alpha = (grey / 255.0)[..., None]
    tint = rng.uniform(0.6, 1.0, size=3) * 255.0
    region = canvas[y0 : y0 + size, x0 : x0 + size]
    canvas[y0 : y0 + size, x0 : x0 + size] = region * (1 - alpha) + tint * alpha
    inst[y0 : y0 + size, x0 : x0 + size][grey > _MASK_THRESHOLD] = k


def _scene(
    items: dict[str, list[np.ndarray]], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list]:
    """One canvas, its class-index mask and its objects ``[(class index, xyxy box), ...]``.

    Items pasted later cover earlier ones; an item's box is the tight box of its pixels still visible, and an item
    left with a sliver under 4 px is not annotated (its visible pixels stay in the mask).
    """
    canvas = _background(rng)
    inst = np.zeros((CANVAS, CANVAS), dtype=np.int32)  # 0 = background, k = k-th pasted item
    classes: list[int] = []
    for k in range(1, int(rng.integers(1, 5)) + 1):
        cls = int(rng.integers(0, len(DEMO_CLASSES)))
        pool = items[DEMO_CLASSES[cls]]
        _paste(canvas, inst, pool[int(rng.integers(0, len(pool)))], k, rng)
        classes.append(cls)
    lut = np.asarray([0, *[c + 1 for c in classes]], dtype=np.uint8)
    mask = lut[inst]
    objects: list[tuple[int, list[float]]] = []
    for k, cls in enumerate(classes, start=1):
        ys, xs = np.nonzero(inst == k)
        if len(xs) == 0 or xs.max() - xs.min() < 3 or ys.max() - ys.min() < 3:
            continue
        objects.append((cls, [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]))
    return np.clip(canvas, 0, 255).astype(np.uint8), mask, objects


def _write(root: Path, task: str) -> None:
    """Build the demo of `task` into `root` (which must not exist yet)."""
    from PIL import Image

    items = _items()
    rng = np.random.default_rng(_SEED)
    (root / "images").mkdir(parents=True)
    if task == "segmentation":
        (root / "masks").mkdir()
    images: list[dict] = []
    anns: list[dict] = []
    for i in range(N_IMAGES):
        img, mask, objects = _scene(items, rng)
        name = f"scene-{i:03d}.png"
        Image.fromarray(img).save(root / "images" / name)
        if task == "segmentation":
            Image.fromarray(mask, mode="L").save(root / "masks" / name)
            continue
        images.append({"id": i + 1, "file_name": name, "width": CANVAS, "height": CANVAS})
        for cls, (x1, y1, x2, y2) in objects:
            w, h = x2 - x1, y2 - y1
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": cls + 1,
                    "bbox": [x1, y1, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    if task == "detection":
        cats = [{"id": i + 1, "name": n} for i, n in enumerate(DEMO_CLASSES)]
        doc = {"images": images, "annotations": anns, "categories": cats}
        (root / "annotations.json").write_text(json.dumps(doc))
    else:
        (root / "classes.txt").write_text("\n".join(("background", *DEMO_CLASSES)) + "\n")
    (root / "README.md").write_text(_readme(task))
    (root / ".complete").write_text(str(DEMO_VERSION))


def _readme(task: str) -> str:
    return (
        f"# advisor {task} demo (generated)\n\n"
        f"{N_IMAGES} canvases of {CANVAS}x{CANVAS} px with 1-4 Fashion-MNIST items (classes: "
        f"{', '.join(DEMO_CLASSES)}; MIT, see the package's demo_data LICENSE.md) pasted at random scales on "
        "noisy gradient backgrounds. Boxes are the tight boxes of each item's visible pixels; masks are the "
        f"pixels brighter than {_MASK_THRESHOLD}/255. Built by advisor.dense.demo, seeded: a synthetic dataset, "
        "not a benchmark.\n"
    )


def dense_demo_path(task: str) -> Path:
    """The demo dataset of `task` (``detection`` or ``segmentation``), built into the cache on first use."""
    from advisor.errors import UsageError
    from advisor.paths import cache_dir

    if task not in ("detection", "segmentation"):
        raise UsageError(
            f"no demo for task {task!r}", hint="use --demo, --demo detection or --demo segmentation"
        )
    base = cache_dir("demo")
    root = base / f"{task}-v{DEMO_VERSION}"
    if (root / ".complete").is_file():
        return root
    tmp = base / f".{task}-v{DEMO_VERSION}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    _write(tmp, task)
    shutil.rmtree(root, ignore_errors=True)  # a partial earlier build
    try:
        os.replace(tmp, root)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return root
