"""`advisor metrics detection|segmentation GT PRED`: COCO results JSON, YOLO txt and mask folders against
generated ground truth; equal to pycocotools on the COCO file as written (annotation ids from 0); one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from advisor.cli.main import app
from advisor.metrics import SegmentationConfusion
from tests.metrics.conftest import make_dataset, pycocotools_eval

runner = CliRunner()
CAT_IDS = [5, 7, 9]  # COCO category ids of the three classes: not 1..3, to check the id mapping


def _write_coco(tmp_path: Path) -> tuple[Path, dict, list[dict], dict]:
    """A COCO GT file (image ids from 100, annotation ids from 0) with its images, and predictions in three
    forms: COCO results by id, by file name, and the detections themselves (for YOLO)."""
    gt, preds = make_dataset(seed=4, n_images=12)
    (tmp_path / "images").mkdir()
    images, anns = [], []
    for i, s in enumerate(gt.samples):
        Image.new("RGB", (s.width, s.height)).save(tmp_path / "images" / s.id)
        images.append({"id": 100 + i, "file_name": f"images/{s.id}", "width": s.width, "height": s.height})
        for b, lab, crowd in zip(s.boxes, s.labels, s.crowd_mask(), strict=True):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append(
                {
                    "id": len(anns),
                    "image_id": 100 + i,
                    "category_id": CAT_IDS[int(lab)],
                    "bbox": [float(b[0]), float(b[1]), w, h],
                    "area": w * h,
                    "iscrowd": int(crowd),
                }
            )
    cats = [{"id": c, "name": n} for c, n in zip(CAT_IDS, gt.classes, strict=True)]
    raw = {"images": images, "annotations": anns, "categories": cats}
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(raw))
    results = []
    for i, s in enumerate(gt.samples):
        det = preds.get(s.id)
        if det is None:
            continue
        for b, sc, lab in zip(det.boxes, det.scores, det.labels, strict=True):
            box = [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]
            results.append(
                {"image_id": 100 + i, "category_id": CAT_IDS[int(lab)], "bbox": box, "score": float(sc)}
            )
    return path, raw, results, {"gt": gt, "preds": preds}


def _json(args: list[str]) -> dict:
    res = runner.invoke(app, [*args, "--format", "json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _reference(raw: dict, results: list[dict]) -> np.ndarray:
    fixed = dict(raw, annotations=[dict(a, id=a["id"] + 1) for a in raw["annotations"]])
    return pycocotools_eval(fixed, results)[0]


def test_coco_results_by_id_equal_pycocotools(tmp_path):
    gt_path, raw, results, _ = _write_coco(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps(results))
    out = _json(["metrics", "detection", str(gt_path), str(tmp_path / "results.json")])
    ref = _reference(raw, results)
    m = out["metrics"]
    for key, r in zip(("map", "map50", "map75", "map_small", "map_medium", "map_large"), ref, strict=False):
        assert m[key] == pytest.approx(float(r), abs=1e-4), key
    assert m["ar100"] == pytest.approx(float(ref[8]), abs=1e-4)
    assert out["predictions"]["format"] == "coco-results" and out["ground_truth"]["format"] == "coco"
    assert "re-indexed from 1" in out["protocol"] and "faster-coco-eval" in out["protocol"]
    assert len(m["pr_curves"]["cat"]["precision"]) == 101
    # with the raw ids (annotation 0) pycocotools itself scores lower: the pitfall the command avoids
    assert pycocotools_eval(raw, results)[0][0] < m["map"] - 1e-4


def test_file_names_and_yolo_txt_give_the_same_numbers(tmp_path):
    gt_path, _, results, made = _write_coco(tmp_path)
    by_id = {100 + i: f"images/{s.id}" for i, s in enumerate(made["gt"].samples)}
    named = [dict(r, image_id=by_id[r["image_id"]]) for r in results]
    (tmp_path / "named.json").write_text(json.dumps(named))
    (tmp_path / "results.json").write_text(json.dumps(results))
    yolo = tmp_path / "yolo"
    yolo.mkdir()
    for s in made["gt"].samples:
        det = made["preds"].get(s.id)
        if det is None:
            continue
        lines = []
        for b, sc, lab in zip(det.boxes.astype(float), det.scores, det.labels, strict=True):
            cx, cy = (b[0] + b[2]) / 2 / s.width, (b[1] + b[3]) / 2 / s.height
            w, h = (b[2] - b[0]) / s.width, (b[3] - b[1]) / s.height
            lines.append(f"{lab} {cx:.8f} {cy:.8f} {w:.8f} {h:.8f} {sc:.6f}")
        (yolo / f"{Path(s.id).stem}.txt").write_text("\n".join(lines) + "\n")
    by_ids = _json(["metrics", "detection", str(gt_path), str(tmp_path / "results.json")])["metrics"]
    by_names = _json(["metrics", "detection", str(gt_path), str(tmp_path / "named.json")])["metrics"]
    by_yolo = _json(["metrics", "detection", str(gt_path), str(yolo)])
    assert by_names["map"] == pytest.approx(by_ids["map"], abs=1e-9)
    assert by_yolo["predictions"]["format"] == "yolo-txt"
    for key in ("map", "map50", "map75", "ar100"):
        assert by_yolo["metrics"][key] == pytest.approx(by_ids[key], abs=1e-4), key


def test_human_output_names_the_protocol(tmp_path):
    gt_path, _, results, _ = _write_coco(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps(results))
    res = runner.invoke(app, ["metrics", "detection", str(gt_path), str(tmp_path / "results.json")])
    assert res.exit_code == 0, res.output
    assert "mAP (IoU .50:.95)" in res.stdout and "protocol: COCO bbox (faster-coco-eval" in res.stdout
    assert "dog" in res.stdout  # per-class table


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"not": "a list"}', "a COCO results file is a JSON list"),
        ("[1, 2", "not readable as JSON"),
        (
            '[{"image_id": 100, "category_id": 5, "bbox": [1, 2], "score": 0.5}]',
            "result 0 is not a COCO detection",
        ),
        (
            '[{"image_id": "nope.jpg", "category_id": 5, "bbox": [1, 2, 3, 4], "score": 0.5}]',
            "no prediction matches",
        ),
    ],
)
def test_bad_predictions_are_one_line_errors_naming_the_file(tmp_path, content, expected):
    gt_path, _, _, _ = _write_coco(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    res = runner.invoke(app, ["metrics", "detection", str(gt_path), str(bad)])
    assert res.exit_code != 0
    assert "Traceback" not in res.output and expected in res.output and "bad.json" in res.output


def test_bad_yolo_line_names_file_and_line(tmp_path):
    gt_path, _, _, made = _write_coco(tmp_path)
    yolo = tmp_path / "yolo"
    yolo.mkdir()
    (yolo / f"{Path(made['gt'].samples[0].id).stem}.txt").write_text("0 0.5 0.5 0.1\n")
    res = runner.invoke(app, ["metrics", "detection", str(gt_path), str(yolo)])
    assert res.exit_code != 0 and ".txt:1: expected 'class cx cy w h conf'" in res.output


def _write_masks(tmp_path: Path) -> tuple[Path, Path, list[tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(0)
    gt_root, pred_dir = tmp_path / "seg", tmp_path / "pred"
    for d in (gt_root / "images", gt_root / "masks", pred_dir):
        d.mkdir(parents=True)
    pairs = []
    for i in range(4):
        target = np.zeros((24, 32), np.uint8)
        target[4 : 12 + i, 6:20] = 1
        target[14:22, 20 + i : 30] = 2
        target[0, :] = 255  # ignore row
        pred = target.copy()
        pred[0, :] = 0
        flip = rng.random(pred.shape) < 0.15
        pred[flip] = rng.integers(0, 3, size=int(flip.sum()))
        Image.new("RGB", (32, 24)).save(gt_root / "images" / f"s{i}.png")
        Image.fromarray(target, mode="L").save(gt_root / "masks" / f"s{i}.png")
        Image.fromarray(pred, mode="L").save(pred_dir / f"s{i}.png")
        pairs.append((pred, target))
    return gt_root, pred_dir, pairs


def test_segmentation_mask_folder_equals_the_confusion_matrix(tmp_path):
    gt_root, pred_dir, pairs = _write_masks(tmp_path)
    out = _json(["metrics", "segmentation", str(gt_root), str(pred_dir)])
    conf = SegmentationConfusion(3, ignore_index=255)
    for pred, target in pairs:
        conf.update(pred, target)
    want = conf.result()
    m = out["metrics"]
    assert m["miou"] == pytest.approx(want.miou, abs=1e-12)
    assert m["pixel_accuracy"] == pytest.approx(want.pixel_accuracy, abs=1e-12)
    assert m["n_ignored"] == 4 * 32 and out["predictions"]["images_matched"] == 4
    assert "accumulated" in out["protocol"] and "ignore_index 255" in out["protocol"]


@pytest.mark.assets
def test_labelme_coco_file_through_the_command(tmp_path, labelme_coco):
    raw = json.loads(labelme_coco.read_text())
    assert min(a["id"] for a in raw["annotations"]) == 0 and raw["categories"][0]["id"] == 0
    rng = np.random.default_rng(1)
    results = []
    for a in raw["annotations"]:
        x, y, w, h = a["bbox"]
        dx, dy = rng.normal(0, 0.05, size=2) * (w, h)
        box = [x + dx, y + dy, w * rng.uniform(0.9, 1.1), h * rng.uniform(0.9, 1.1)]
        results.append(
            {
                "image_id": a["image_id"],
                "category_id": a["category_id"],
                "bbox": box,
                "score": float(rng.random()),
            }
        )
    (tmp_path / "res.json").write_text(json.dumps(results))
    out = _json(["metrics", "detection", str(labelme_coco), str(tmp_path / "res.json")])
    ref = _reference(raw, results)
    for key, r in zip(("map", "map50", "map75", "map_small", "map_medium", "map_large"), ref, strict=False):
        assert (out["metrics"][key] is None and r < 0) or out["metrics"][key] == pytest.approx(
            float(r), abs=1e-4
        ), key
    assert pycocotools_eval(raw, results)[0][0] < out["metrics"]["map"] - 1e-3  # raw ids: lower


@pytest.mark.assets
def test_membrane_labels_as_predictions_score_one(tmp_path):
    from tests.metrics.conftest import assets_path

    root = assets_path()
    train = root / "segmentation/membrane/data/membrane/train" if root else None
    if train is None or not train.is_dir():
        pytest.skip("shared assets (membrane) not found")
    out = _json(["metrics", "segmentation", str(train), str(train / "label")])
    assert out["metrics"]["miou"] == pytest.approx(1.0) and out["metrics"]["n_images"] == 30
    assert out["metrics"]["present_classes"] == ["background", "foreground"]


def test_public_api_function_and_light_import(tmp_path):
    import subprocess
    import sys

    import advisor

    gt_path, raw, results, _ = _write_coco(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps(results))
    report = advisor.metrics("detection", gt_path, tmp_path / "results.json")
    assert report.metrics.map == pytest.approx(float(_reference(raw, results)[0]), abs=1e-4)
    assert report.protocol.startswith("COCO bbox") and report.to_dict()["task"] == "detection"
    code = "import sys, advisor.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_segmentation_human_output_and_unmatched_masks(tmp_path):
    gt_root, pred_dir, _ = _write_masks(tmp_path)
    Image.fromarray(np.zeros((24, 32), np.uint8), mode="L").save(pred_dir / "stranger.png")
    res = runner.invoke(app, ["metrics", "segmentation", str(gt_root), str(pred_dir)])
    assert res.exit_code == 0, res.output
    assert "mIoU" in res.stdout and "protocol: confusion matrix accumulated over 4 image(s)" in res.stdout
    assert "1 mask file(s) not in the ground truth, ignored (e.g. stranger.png)" in res.output
