"""COCO box metrics (faster-coco-eval) equal pycocotools to 1e-4; ids re-indexed from 1; crowd honoured."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from advisor.dense.types import DenseDataset, DenseSample, Detections
from advisor.metrics import coco_inputs, detection_metrics
from advisor.metrics.detection import RECALL_GRID
from tests.metrics.conftest import CLASSES, make_dataset, pycocotools_eval

STATS = ("map", "map50", "map75", "map_small", "map_medium", "map_large")
STATS += ("ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")


def _assert_same(m, ref_stats: np.ndarray, ref_precision: np.ndarray, classes: list[str]) -> None:
    for name, ref in zip(STATS, ref_stats, strict=True):
        got = getattr(m, name)
        if ref < 0:
            assert got is None, name
        else:
            assert got == pytest.approx(float(ref), abs=1e-4), name
    for k, name in enumerate(classes):
        p = ref_precision[:, :, k, 0, -1]
        if (p > -1).any():
            assert m.per_class_ap[name] == pytest.approx(float(p[p > -1].mean()), abs=1e-4), name
            assert m.pr_curves[name]["precision_50"] == pytest.approx(list(p[0]), abs=1e-4)
        else:
            assert m.per_class_ap[name] is None and name not in m.pr_curves


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generated_fixture_equals_pycocotools(seed):
    gt, preds = make_dataset(seed)
    sizes = {"small": 0, "medium": 0, "large": 0}
    for s in gt.samples:
        for b in s.boxes:
            a = float((b[2] - b[0]) * (b[3] - b[1]))
            sizes["small" if a < 32**2 else "medium" if a < 96**2 else "large"] += 1
    assert min(sizes.values()) >= 5, sizes  # the fixture covers every size range
    assert sum(int(s.crowd_mask().sum()) for s in gt.samples) >= 1
    assert any(s.n_objects == 0 for s in gt.samples) and any(s.id not in preds for s in gt.samples)

    m = detection_metrics(gt, preds)
    gt_dict, results, _ = coco_inputs(gt, preds)
    ref_stats, ref_precision = pycocotools_eval(gt_dict, results)
    _assert_same(m, ref_stats, ref_precision, CLASSES)
    assert 0.2 < m.map < 0.95  # jittered boxes: neither trivial nor broken
    assert len(m.pr_curves["cat"]["precision"]) == len(RECALL_GRID) == 101
    assert "faster-coco-eval" in m.protocol and "re-indexed from 1" in m.protocol


def test_perfect_predictions_score_one_and_ids_start_at_one():
    gt, _ = make_dataset(3, n_images=8)
    preds = {
        s.id: Detections(
            s.boxes[~s.crowd_mask()], np.ones((~s.crowd_mask()).sum(), np.float32), s.labels[~s.crowd_mask()]
        )
        for s in gt.samples
    }
    m = detection_metrics(gt, preds)
    assert m.map == pytest.approx(1.0) and m.map50 == pytest.approx(1.0) and m.ar100 == pytest.approx(1.0)
    gt_dict, results, _ = coco_inputs(gt, preds)
    assert min(a["id"] for a in gt_dict["annotations"]) == 1
    assert min(c["id"] for c in gt_dict["categories"]) == 1 and min(i["id"] for i in gt_dict["images"]) == 1


def _one_image(crowd: bool) -> DenseDataset:
    boxes = np.array([[10, 10, 110, 110], [200, 200, 400, 400]], dtype=np.float32)
    s = DenseSample(
        "a.jpg", Path("/nowhere/a.jpg"), 500, 500, boxes, np.array([0, 0]), np.array([False, crowd])
    )
    return DenseDataset(Path("/nowhere"), "detection", "generated", ["thing"], [s])


def test_crowd_regions_are_honoured():
    # a confident detection inside a crowd region is neither a hit nor a false positive
    det = Detections(
        np.array([[10, 10, 110, 110], [220, 220, 300, 300]], dtype=np.float32),
        np.array([0.5, 0.9], dtype=np.float32),
        np.array([0, 0]),
    )
    with_crowd = detection_metrics(_one_image(crowd=True), {"a.jpg": det})
    assert with_crowd.map == pytest.approx(1.0) and with_crowd.n_crowd == 1 and with_crowd.n_gt == 2
    gt_dict, results, _ = coco_inputs(_one_image(crowd=True), {"a.jpg": det})
    assert pycocotools_eval(gt_dict, results)[0][0] == pytest.approx(1.0)
    # the same box as an ordinary object: the detection inside it is a false positive ranked first (IoU 0.16)
    plain = detection_metrics(_one_image(crowd=False), {"a.jpg": det})
    assert plain.map < 0.6


def test_unknown_images_and_classes_are_noted_not_scored():
    gt, preds = make_dataset(0, n_images=6)
    base = detection_metrics(gt, preds)
    extra = dict(preds)
    extra["not_in_gt.jpg"] = Detections(
        np.array([[0, 0, 5, 5]], np.float32), np.array([1.0], np.float32), np.array([0])
    )
    m = detection_metrics(gt, extra, class_map={0: 0, 1: 1, 2: 2})
    assert m.map == pytest.approx(base.map)
    assert any("not_in_gt.jpg" in n for n in m.notes)
    dropped = detection_metrics(gt, preds, class_map={0: 0, 1: 1, 2: None})
    assert dropped.per_class_ap["person"] == pytest.approx(0.0)
    assert any("outside the ground truth's classes" in n for n in dropped.notes)


def test_no_predictions_at_all():
    gt, _ = make_dataset(0, n_images=4)
    m = detection_metrics(gt, {})
    assert m.map == 0.0 and m.n_predictions == 0 and m.ar100 == 0.0


def _labelme_dataset(path: Path) -> tuple[DenseDataset, dict, dict[str, Detections], list[dict]]:
    """The labelme COCO file as a DenseDataset (category 0 `_background_` dropped), its boxes perturbed as
    predictions (in the raw file's ids), built here independently of advisor's readers."""
    raw = json.loads(path.read_text())
    cats = [c for c in raw["categories"] if c["name"] != "_background_"]
    index = {c["id"]: i for i, c in enumerate(cats)}
    rng = np.random.default_rng(0)
    samples, preds, results = [], {}, []
    for im in raw["images"]:
        anns = [a for a in raw["annotations"] if a["image_id"] == im["id"]]
        xyxy = np.array(
            [
                [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                for a in anns
            ],
            np.float32,
        )
        samples.append(
            DenseSample(
                im["file_name"],
                path.parent / im["file_name"],
                im["width"],
                im["height"],
                xyxy,
                np.array([index[a["category_id"]] for a in anns]),
                np.array([bool(a["iscrowd"]) for a in anns]),
                areas=np.array([a["area"] for a in anns], np.float64),
            )
        )
        jitter = rng.normal(0, 0.1, size=xyxy.shape) * (xyxy[:, 2:] - xyxy[:, :2]).repeat(2, axis=1)
        scores = rng.uniform(0.2, 1.0, size=len(anns)).astype(np.float32)
        labels = np.array([index[a["category_id"]] for a in anns])
        labels[1::4] = (labels[1::4] + 1) % len(cats)  # some class errors
        preds[im["file_name"]] = Detections((xyxy + jitter).astype(np.float32), scores, labels)
        for b, sc, lab in zip(xyxy + jitter, scores, labels, strict=True):
            results.append(
                {
                    "image_id": im["id"],
                    "category_id": cats[lab]["id"],
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                    "score": float(sc),
                }
            )
    ds = DenseDataset(path.parent, "detection", "coco", [c["name"] for c in cats], samples)
    return ds, raw, preds, results


@pytest.mark.assets
def test_labelme_coco_file_equals_pycocotools_with_ids_reindexed(labelme_coco):
    ds, raw, preds, results = _labelme_dataset(labelme_coco)
    assert min(a["id"] for a in raw["annotations"]) == 0
    m = detection_metrics(ds, preds)
    # the reference: pycocotools on the raw file, annotation ids shifted to start at 1 (nothing else changed)
    fixed = dict(raw, annotations=[dict(a, id=a["id"] + 1) for a in raw["annotations"]])
    ref_stats, ref_precision = pycocotools_eval(fixed, results)
    _assert_same(m, ref_stats, ref_precision[:, :, 1:], ds.classes)  # column 0 is `_background_`
    assert "annotation area" in m.protocol
    # the pitfall the re-indexing removes: with the raw ids pycocotools scores lower
    raw_stats, _ = pycocotools_eval(raw, results)
    assert raw_stats[0] < ref_stats[0] - 1e-3
