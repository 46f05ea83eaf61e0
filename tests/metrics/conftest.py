"""Fixtures for the metrics tests: generated detection ground truth + predictions, pycocotools as the reference,
and the optional real assets (skipped when ../shared/assets is absent)."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from advisor.dense.types import DenseDataset, DenseSample, Detections

REPO_ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["cat", "dog", "person"]


def assets_path() -> Path | None:
    """``<repo>/../shared/assets`` (``$ADVISOR_ASSETS`` overrides), or None when absent."""
    root = Path(os.environ.get("ADVISOR_ASSETS", REPO_ROOT.parent / "shared" / "assets")).resolve()
    return root if root.is_dir() else None


@pytest.fixture(scope="session")
def labelme_coco() -> Path:
    """The labelme COCO instances file (annotation ids from 0, category 0 `_background_`); skips when absent."""
    root = assets_path()
    path = (
        root / "formats/labelme/examples/instance_segmentation/data_dataset_coco/annotations.json"
        if root
        else None
    )
    if path is None or not path.is_file():
        pytest.skip("shared assets (formats/labelme) not found")
    return path


def _box(rng: np.random.Generator, w: int, h: int) -> list[float]:
    side = float(rng.choice([rng.uniform(8, 30), rng.uniform(34, 90), rng.uniform(100, 220)]))
    bw, bh = side * rng.uniform(0.6, 1.4), side * rng.uniform(0.6, 1.4)
    x, y = rng.uniform(0, max(1.0, w - bw)), rng.uniform(0, max(1.0, h - bh))
    return [x, y, min(float(w), x + bw), min(float(h), y + bh)]


def make_dataset(seed: int = 0, n_images: int = 24) -> tuple[DenseDataset, dict[str, Detections]]:
    """Random ground truth (3 classes, small/medium/large boxes, ~6% crowd, some images without boxes) and
    predictions (jittered boxes, misses, false positives, class swaps, some images without predictions)."""
    rng = np.random.default_rng(seed)
    samples, preds = [], {}
    for i in range(n_images):
        w, h = int(rng.integers(240, 640)), int(rng.integers(240, 480))
        n = 0 if i % 6 == 5 else int(rng.integers(1, 9))
        boxes = np.array([_box(rng, w, h) for _ in range(n)], dtype=np.float32).reshape(-1, 4)
        labels = rng.integers(0, len(CLASSES), size=n).astype(np.int64)
        crowd = rng.random(n) < 0.06
        sid = f"img_{i:03d}.jpg"
        samples.append(DenseSample(sid, Path(f"/nowhere/{sid}"), w, h, boxes, labels, crowd))
        if i % 7 == 3:
            continue  # no predictions for this image
        pb, pl, ps = [], [], []
        for b, lab in zip(boxes, labels, strict=True):
            if rng.random() < 0.15:
                continue  # a miss
            bw, bh = b[2] - b[0], b[3] - b[1]
            jitter = rng.normal(0, 0.08, size=4) * np.array([bw, bh, bw, bh])
            pb.append(b + jitter)
            pl.append(lab if rng.random() > 0.1 else (lab + 1) % len(CLASSES))
            ps.append(rng.uniform(0.3, 1.0))
        for _ in range(int(rng.integers(0, 4))):  # false positives
            pb.append(_box(rng, w, h))
            pl.append(int(rng.integers(0, len(CLASSES))))
            ps.append(rng.uniform(0.0, 0.7))
        preds[sid] = Detections(
            np.array(pb, dtype=np.float32).reshape(-1, 4),
            np.array(ps, dtype=np.float32),
            np.array(pl, dtype=np.int64),
        )
    return DenseDataset(Path("/nowhere"), "detection", "generated", list(CLASSES), samples), preds


def pycocotools_eval(gt_dict: dict[str, Any], results: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools' 12 bbox stats and precision array on COCO dicts (stdout silenced)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats), np.asarray(ev.eval["precision"])
