"""`advisor metrics instance-segmentation GT PRED`: COCO segm results (RLE and polygons) against a COCO polygon
ground truth, equal to pycocotools' COCOeval segm on the same files; perfect masks give 1.0; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from advisor.cli.main import app

mask_util = pytest.importorskip("pycocotools.mask")
runner = CliRunner()
SQUARES = {  # image -> objects (category id, x, y, side)
    "a.png": [(3, 4, 4, 20), (8, 30, 6, 16)],
    "b.png": [(3, 10, 20, 24)],
}


def _poly(x: float, y: float, side: float) -> list[float]:
    return [x, y, x + side, y, x + side, y + side, x, y + side]


def _ground_truth(tmp_path: Path) -> tuple[Path, dict]:
    images, anns = [], []
    (tmp_path / "img").mkdir()
    for i, (name, objs) in enumerate(SQUARES.items(), start=1):
        Image.new("RGB", (64, 48)).save(tmp_path / "img" / name)
        images.append({"id": i, "file_name": f"img/{name}", "width": 64, "height": 48})
        for cat, x, y, side in objs:
            anns.append(
                {
                    "id": len(anns) + 1, "image_id": i, "category_id": cat, "segmentation": [_poly(x, y, side)],
                    "bbox": [x, y, side, side], "area": float(side * side), "iscrowd": 0,
                }
            )  # fmt: skip
    raw = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 3, "name": "cell"}, {"id": 8, "name": "dot"}],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(raw))
    return path, raw


def _rle(poly: list[float]) -> dict:
    rle = mask_util.merge(mask_util.frPyObjects([poly], 48, 64))
    return {"size": [48, 64], "counts": rle["counts"].decode("ascii")}


def _json(args: list[str]) -> dict:
    r = runner.invoke(app, [*args, "--format", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_perfect_masks_score_one_by_rle_and_by_polygon(tmp_path):
    gt, raw = _ground_truth(tmp_path)
    rle_results, poly_results = [], []
    for a in raw["annotations"]:
        base = {"image_id": a["image_id"], "category_id": a["category_id"], "score": 0.9}
        rle_results.append(base | {"segmentation": _rle(a["segmentation"][0])})
        poly_results.append(base | {"segmentation": a["segmentation"]})
    for name, res in (("rle.json", rle_results), ("poly.json", poly_results)):
        (tmp_path / name).write_text(json.dumps(res))
        out = _json(["metrics", "instance-segmentation", str(gt), str(tmp_path / name)])
        m = out["metrics"]
        assert m["map"] == pytest.approx(1.0) and m["iou_type"] == "segm", name
        assert out["predictions"]["format"] == "coco-segm-results" and "COCO segm" in out["protocol"]


def test_mask_ap_equals_pycocotools_segm_on_the_same_files(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, raw = _ground_truth(tmp_path)
    rng = np.random.default_rng(0)
    results = []
    for a in raw["annotations"]:
        x, y, side = a["bbox"][0], a["bbox"][1], a["bbox"][2]
        for k in range(3):  # a near hit, a worse one and one of the wrong class
            dx = float(rng.integers(0, 6)) * (k + 1)
            cat = a["category_id"] if k < 2 else (8 if a["category_id"] == 3 else 3)
            poly = _poly(x + dx, y + dx / 2, side)
            results.append(
                {
                    "image_id": a["image_id"],
                    "category_id": cat,
                    "segmentation": _rle(poly),
                    "score": 0.9 - 0.2 * k,
                }
            )
    (tmp_path / "res.json").write_text(json.dumps(results))
    ours = _json(["metrics", "instance-segmentation", str(gt), str(tmp_path / "res.json")])["metrics"]
    coco = COCO(str(gt))
    ev = COCOeval(coco, coco.loadRes(str(tmp_path / "res.json")), "segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    for key, ref in zip(("map", "map50", "map75"), ev.stats[:3], strict=True):
        assert ours[key] == pytest.approx(float(ref), abs=1e-6), key
    assert 0.0 < ours["map"] < 1.0


def test_bad_segm_results_are_one_line_errors(tmp_path):
    gt, _ = _ground_truth(tmp_path)
    (tmp_path / "nomask.json").write_text(json.dumps([{"image_id": 1, "category_id": 3, "score": 0.5}]))
    r = runner.invoke(app, ["metrics", "instance-segmentation", str(gt), str(tmp_path / "nomask.json")])
    assert (
        r.exit_code != 0 and "result 0 is not a COCO segm result" in r.output and "Traceback" not in r.output
    )
    (tmp_path / "folder").mkdir()
    r = runner.invoke(app, ["metrics", "instance-segmentation", str(gt), str(tmp_path / "folder")])
    assert r.exit_code != 0 and "COCO segm results .json" in r.output
    bad = [{"image_id": 1, "category_id": 3, "score": 0.5, "segmentation": {"size": [10, 10], "counts": "x"}}]
    (tmp_path / "wrongsize.json").write_text(json.dumps(bad))
    out = _json(["metrics", "instance-segmentation", str(gt), str(tmp_path / "wrongsize.json")])
    assert any("not readable at the image size" in n for n in out["notes"]) and out["metrics"]["map"] == 0.0
