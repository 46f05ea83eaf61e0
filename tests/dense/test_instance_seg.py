"""Instance segmentation: COCO polygons/RLE and YOLO-seg read as per-instance masks, COCO mask AP (checked against
pycocotools and by hand), the random-init Mask R-CNN, and ``advisor recommend --task instance-segmentation`` end to
end on a generated COCO-polygon dataset."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from advisor.dense.instance_masks import InstanceMasks
from advisor.dense.mask_ap import mask_metrics
from advisor.dense.readers import detect_dense, load_dense
from advisor.dense.types import DenseDataset, DenseSample, InstanceDetections
from advisor.errors import DatasetError, UsageError
from advisor.metrics import coco_inputs

pytest.importorskip("faster_coco_eval", reason="mask AP needs faster-coco-eval (the dense extra)")

W, H = 64, 48
MASKRCNN = "torchvision:maskrcnn_resnet50_fpn"


def _codes(ds: DenseDataset) -> dict[str, int]:
    return {w.code: w.count for w in ds.warnings}


def _rect(x1: int, y1: int, x2: int, y2: int) -> list[float]:
    return [x1, y1, x2, y1, x2, y2, x1, y2]


def _binary(*boxes: tuple[int, int, int, int], h: int = H, w: int = W) -> np.ndarray:
    """``(N, h, w)`` masks, each the pixel rectangle ``[y1:y2, x1:x2]`` of one ``(x1, y1, x2, y2)``."""
    m = np.zeros((len(boxes), h, w), dtype=bool)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        m[k, y1:y2, x1:x2] = True
    return m


def write_poly_coco(root: Path, n_images: int = 6, *, extras: bool = False) -> Path:
    """COCO with polygon masks drawn into the images by PIL: per image a triangle ``cat`` and a rectangle ``dog``.

    `extras` adds to the first image a compressed-RLE ``cat``, an uncompressed-RLE crowd ``dog`` and a box-only
    ``cat`` (3 more objects, 1 of them crowd).
    """
    (root / "images").mkdir(parents=True)
    images, anns = [], []
    for i in range(n_images):
        im = Image.new("RGB", (W, H), (20, 20, 20))
        draw = ImageDraw.Draw(im)
        x = 4 + 3 * i
        tri = [x, 4, x + 20, 4, x + 10, 24]
        rect = _rect(34, 20, 58, 42)
        draw.polygon(tri, fill=(220, 130, 40))
        draw.polygon(rect, fill=(40, 130, 220))
        im.save(root / "images" / f"im{i}.png")
        images.append({"id": i + 1, "file_name": f"im{i}.png", "width": W, "height": H})
        for cat, poly, box in ((1, tri, [x, 4, 20, 20]), (2, rect, [34, 20, 24, 22])):
            anns.append(
                {"id": len(anns) + 1, "image_id": i + 1, "category_id": cat, "segmentation": [poly],
                 "bbox": box, "iscrowd": 0}
            )  # fmt: skip
    if extras:
        rle = InstanceMasks.from_binary(_binary((2, 30, 12, 40))).rles()[0]  # compressed, 10 x 10
        runs = [H * 40 + 26, *[10, H - 10] * 9, 10, (H - 36) + H * (W - 50)]  # columns 40..49, rows 26..35
        anns += [
            {"id": 90, "image_id": 1, "category_id": 1, "segmentation": rle, "area": 100.0, "iscrowd": 0},
            {"id": 91, "image_id": 1, "category_id": 2, "segmentation": {"size": [H, W], "counts": runs},
             "iscrowd": 1},
            {"id": 92, "image_id": 1, "category_id": 1, "bbox": [50, 2, 10, 8], "iscrowd": 0},
        ]  # fmt: skip
    cats = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    doc = {"images": images, "annotations": anns, "categories": cats}
    (root / "annotations.json").write_text(json.dumps(doc))
    return root


# ----------------------------------------------------------------------------------------------- readers
def test_coco_polygons_and_rle_are_instance_masks_decoded_at_the_image_size(tmp_path: Path) -> None:
    root = write_poly_coco(tmp_path / "coco", n_images=2, extras=True)
    assert detect_dense(root) == ("instance-segmentation", "coco")
    ds = load_dense(root)
    assert (ds.task, ds.format, ds.classes) == ("instance-segmentation", "coco", ["cat", "dog"])
    a, b = ds.samples
    assert a.n_objects == 5 and b.n_objects == 2
    assert a.masks is not None and len(a.masks) == 5 and (a.masks.height, a.masks.width) == (H, W)
    masks = a.masks.decode()
    assert masks.shape == (5, H, W) and masks.dtype == bool
    # the rectangle polygon (34, 20)-(58, 42) rasterises to its 24 x 22 pixels, as COCO does
    np.testing.assert_array_equal(masks[1], _binary((34, 20, 58, 42))[0])
    np.testing.assert_array_equal(masks[2], _binary((2, 30, 12, 40))[0])  # the compressed RLE
    uncompressed = _binary((40, 26, 50, 36))[0]  # the runs: columns 40..49, rows 26..35
    np.testing.assert_array_equal(masks[3], uncompressed)
    np.testing.assert_array_equal(masks[4], _binary((50, 2, 60, 10))[0])  # box-only: its box as the mask
    assert a.crowd_mask().tolist() == [False, False, False, True, False]
    assert a.areas is not None and a.areas.tolist() == [200.0, 528.0, 100.0, 100.0, 80.0]
    np.testing.assert_array_equal(a.boxes[3], [40, 26, 50, 36])  # the RLE without a bbox: the mask's box
    assert _codes(ds) == {"box-as-mask": 1, "crowd": 1}


def test_a_malformed_or_wrong_size_mask_is_counted_and_its_box_used(tmp_path: Path) -> None:
    root = write_poly_coco(tmp_path / "coco", n_images=1)
    doc = json.loads((root / "annotations.json").read_text())
    bad = [{"size": [H, W], "counts": "garbage!!"}, {"size": [H + 1, W], "counts": [H * W]}]
    for k, seg in enumerate(bad):
        doc["annotations"].append(
            {"id": 50 + k, "image_id": 1, "category_id": 1, "segmentation": seg, "bbox": [1, 1, 4, 4]}
        )
    (root / "annotations.json").write_text(json.dumps(doc))
    ds = load_dense(root)
    (s,) = ds.samples
    assert s.n_objects == 4 and _codes(ds) == {"bad-mask": 2}
    assert s.masks is not None and s.masks.areas().tolist()[2:] == [16.0, 16.0]  # the 4 x 4 boxes


def test_task_detection_on_mask_data_reads_boxes_and_boxes_only_data_stays_detection(tmp_path: Path) -> None:
    root = write_poly_coco(tmp_path / "coco", n_images=3)
    det = load_dense(root, task="detection")
    assert det.task == "detection" and all(s.masks is None for s in det.samples)
    assert _codes(det) == {"polygon-as-box": 6} and det.samples[0].n_objects == 2
    doc = json.loads((root / "annotations.json").read_text())
    for ann in doc["annotations"][1:]:
        ann["segmentation"] = []  # Roboflow's boxes-only export: an empty list is "no mask"
    (root / "annotations.json").write_text(json.dumps(doc))
    assert detect_dense(root) == ("detection", "coco")  # 1 of 6 annotations has a mask
    forced = load_dense(root, task="instance-segmentation")
    assert forced.task == "instance-segmentation" and _codes(forced)["box-as-mask"] == 5
    for ann in doc["annotations"]:
        ann.pop("segmentation")
    (root / "annotations.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="no annotation has a segmentation"):
        load_dense(root, task="instance-segmentation")


def test_yolo_seg_polygons_are_masks_in_pixels(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.new("RGB", (W, H)).save(root / "images" / "p.png")
    poly = [8 / W, 4 / H, 24 / W, 4 / H, 24 / W, 20 / H, 8 / W, 20 / H]  # the 16 x 16 square at (8, 4)
    backwards = [v for k in range(len(poly) - 2, -1, -2) for v in poly[k : k + 2]]  # the points in reverse
    lines = ["0 " + " ".join(f"{v:.6f}" for v in poly), "1 " + " ".join(f"{v:.6f}" for v in backwards)]
    lines.append("1 0.75 0.5 0.25 0.5")  # a box line: its box is its mask
    (root / "labels" / "p.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("names: ['cat', 'dog']\n")
    assert detect_dense(root) == ("instance-segmentation", "yolo")
    ds = load_dense(root)
    (s,) = ds.samples
    assert ds.task == "instance-segmentation" and s.masks is not None and len(s.masks) == 3
    assert s.masks.areas().tolist() == pytest.approx([256.0, 256.0, 16.0 * 24.0])
    np.testing.assert_allclose(s.boxes[0], [8, 4, 24, 20], atol=1e-3)
    assert _codes(ds) == {"box-as-mask": 1}
    det = load_dense(root, task="detection")
    assert det.samples[0].masks is None and _codes(det) == {"polygon-as-box": 2}


@pytest.mark.assets
def test_labelme_coco_fixture_is_instance_segmentation(shared_assets: Path) -> None:
    from dense_assets import asset_or_skip

    f = asset_or_skip(shared_assets, "formats/labelme/examples/instance_segmentation/data_dataset_coco")
    ds = load_dense(f)
    assert ds.task == "instance-segmentation" and sum(s.n_objects for s in ds.samples) == 12
    s = ds.samples[0]
    assert s.masks is not None and s.masks.decode().shape == (3, s.height, s.width)
    areas = s.masks.areas()
    assert s.areas is not None
    assert np.all(np.abs(areas - s.areas) / s.areas < 0.1)  # labelme's area is about the mask's


# ----------------------------------------------------------------------------------------------- mask AP
def _ds(*samples: DenseSample, classes: tuple[str, ...] = ("a", "b")) -> DenseDataset:
    return DenseDataset(Path("/synthetic"), "instance-segmentation", "coco", list(classes), list(samples))


def _gt(sid: str, masks: np.ndarray, labels: list[int], crowd: list[bool] | None = None) -> DenseSample:
    im = InstanceMasks.from_binary(masks)
    return DenseSample(
        sid, Path(f"/synthetic/{sid}"), W, H, boxes=im.boxes(), labels=np.asarray(labels, dtype=np.int64),
        crowd=None if crowd is None else np.asarray(crowd), masks=im,
    )  # fmt: skip


def _pred(masks: np.ndarray, scores: list[float], labels: list[int]) -> InstanceDetections:
    im = InstanceMasks.from_binary(masks)
    return InstanceDetections(
        im.boxes(), np.asarray(scores, dtype=np.float32), np.asarray(labels, dtype=np.int64), im
    )


def test_mask_ap_by_hand_perfect_half_overlap_and_a_false_positive_ranked_first() -> None:
    sq = _binary((10, 10, 30, 30))
    gt = _ds(_gt("a.png", sq, [0]))
    perfect = mask_metrics(gt, {"a.png": _pred(sq, [0.9], [0])})
    assert (perfect.map, perfect.map50, perfect.map75) == (1.0, 1.0, 1.0) and perfect.n_predictions == 1
    half = mask_metrics(gt, {"a.png": _pred(_binary((10, 10, 20, 30)), [0.9], [0])})  # IoU 200/400 = .5
    assert half.map50 == pytest.approx(1.0) and half.map75 == 0.0 and half.map == pytest.approx(0.1)
    fp_then_tp = _pred(_binary((40, 10, 60, 30), (10, 10, 30, 30)), [0.95, 0.9], [0, 0])
    fp_first = mask_metrics(gt, {"a.png": fp_then_tp})  # precision 1/2 at every recall: AP .5 at every IoU
    assert fp_first.map == pytest.approx(0.5)
    assert fp_first.per_class_ap == {"a": pytest.approx(0.5), "b": None}
    nothing = mask_metrics(gt, {})
    assert nothing.map == 0.0 and nothing.to_dict()["iou_type"] == "segm"


def test_mask_ap_differs_from_box_ap_when_only_the_boxes_agree() -> None:
    from dataclasses import replace

    from advisor.metrics.detection import detection_metrics

    ell = _binary((10, 10, 30, 30))
    ell[0, 10:20, 20:30] = False  # an L of 300 pixels; its box is the full 20 x 20 square
    gt = _ds(_gt("a.png", ell, [0]))
    preds = {"a.png": _pred(_binary((10, 10, 30, 30)), [0.9], [0])}  # the square: mask IoU 300/400 = .75
    masks = mask_metrics(gt, preds)
    boxes = detection_metrics(replace(gt, task="detection"), preds)
    assert masks.map == pytest.approx(0.6)  # matched at IoU .50 .. .75: 6 of the 10 thresholds
    assert masks.map75 == pytest.approx(1.0) and boxes.map == pytest.approx(1.0)


def test_mask_ap_equals_pycocotools_segm_on_a_synthetic_case() -> None:
    pytest.importorskip("pycocotools", reason="the cross-check needs pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    samples, preds = [], {}
    for i in range(6):
        boxes, labels = [], []
        for _ in range(int(rng.integers(1, 4))):
            x, y = int(rng.integers(0, 40)), int(rng.integers(0, 26))
            bw, bh = int(rng.integers(4, 24)), int(rng.integers(4, 22))
            boxes.append((x, y, x + bw, y + bh))
            labels.append(int(rng.integers(0, 2)))
        samples.append(_gt(f"{i}.png", _binary(*boxes), labels, crowd=[j == 2 for j in range(len(boxes))]))
        jitter = rng.integers(-3, 4, size=(len(boxes), 2))
        pb = [
            (x1 + int(dx), y1 + int(dy), x2, y2)
            for (x1, y1, x2, y2), (dx, dy) in zip(boxes, jitter, strict=True)
        ]
        pb.append((int(rng.integers(0, 40)), int(rng.integers(0, 26)), 60, 46))  # a false positive
        pl = [*labels, int(rng.integers(0, 2))]
        pl[0] = 1 - pl[0] if i == 3 else pl[0]  # one wrong class
        preds[f"{i}.png"] = _pred(_binary(*[(max(a, 0), max(b, 0), c, d) for a, b, c, d in pb]),
                                  [float(s) for s in rng.uniform(0.1, 1.0, len(pb))], pl)  # fmt: skip
    gt = _ds(*samples)
    ours = mask_metrics(gt, preds)
    gt_dict, results, notes = coco_inputs(gt, preds, iou_type="segm")
    assert not notes and len(results) == sum(len(p) for p in preds.values())
    coco = COCO()
    coco.dataset = copy.deepcopy(gt_dict)
    coco.createIndex()
    ev = COCOeval(coco, coco.loadRes(copy.deepcopy(results)), iouType="segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    theirs = [None if v < 0 else float(v) for v in ev.stats]
    mine = list(ours.summary().values())
    assert all(v is not None for v in mine[:3])
    assert 0.05 < (ours.map or 0) < 0.95  # a case with something to rank
    for a, b in zip(mine, theirs, strict=True):
        assert (a is None and b is None) or abs(a - b) < 1e-6, (mine, theirs)
    assert ours.n_crowd == sum(int(s.crowd_mask().sum()) for s in samples) > 0


def test_predictions_without_masks_or_of_another_size_are_one_line_errors() -> None:
    from advisor.dense.types import Detections

    gt = _ds(_gt("a.png", _binary((10, 10, 30, 30)), [0]))
    boxes_only = Detections(np.asarray([[10, 10, 30, 30]], np.float32), np.asarray([0.9], np.float32),
                            np.asarray([0]))  # fmt: skip
    with pytest.raises(UsageError, match="carry no instance masks"):
        mask_metrics(gt, {"a.png": boxes_only})
    small = _pred(_binary((1, 1, 5, 5), h=10, w=10), [0.9], [0])
    with pytest.raises(UsageError, match="at the image's size"):
        mask_metrics(gt, {"a.png": small})


# ----------------------------------------------------------------------------------------------- Mask R-CNN
def tiny_maskrcnn() -> object:
    """The random-init Mask R-CNN at 64 px, with few proposals and detections (a fast CPU forward)."""
    from advisor.dense.models import load_dense_model

    m = load_dense_model(MASKRCNN, pretrained=False, input_size=(64, 64))
    net = m.net  # type: ignore[attr-defined]
    net.roi_heads.detections_per_img = 5
    net.rpn._pre_nms_top_n = {"training": 64, "testing": 64}
    net.rpn._post_nms_top_n = {"training": 32, "testing": 32}
    return m


@pytest.fixture(scope="module")
def maskrcnn() -> object:
    pytest.importorskip("torchvision")
    return tiny_maskrcnn()


def test_maskrcnn_entry_and_random_init_predictions_carry_binary_masks_at_the_image_size(maskrcnn) -> None:
    from advisor.dense.models import dense_candidates, dense_info

    info = dense_info(MASKRCNN)
    assert (info.task, info.label_set, len(info.classes)) == ("instance-segmentation", "coco-91", 91)
    assert info.license.startswith("BSD-3-Clause") and info.classes[17] == "cat"
    assert MASKRCNN in {i.model_id for i in dense_candidates("instance-segmentation")}
    assert MASKRCNN not in {i.model_id for i in dense_candidates("detection")}
    rng = np.random.default_rng(0)
    ims = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in ((64, 48), (40, 56))]
    outs = maskrcnn.predict(ims)  # type: ignore[attr-defined]
    for im, d in zip(ims, outs, strict=True):
        assert isinstance(d, InstanceDetections) and len(d) <= 5
        assert (d.masks.height, d.masks.width) == (im.height, im.width) and len(d.masks) == len(d)
        m = d.masks.decode()
        assert m.shape == (len(d), im.height, im.width) and m.dtype == bool
    heads = maskrcnn.net.roi_heads  # type: ignore[attr-defined]
    keep, heads.score_thresh = heads.score_thresh, 1.01  # no box passes: no masks, still of the image's size
    try:
        (none,) = maskrcnn.predict([ims[1]])  # type: ignore[attr-defined]
    finally:
        heads.score_thresh = keep
    assert len(none) == 0 and none.masks.decode().shape == (0, 56, 40)


# ----------------------------------------------------------------------------------------------- recommend
def test_recommend_instance_segmentation_end_to_end_reports_mask_and_box_ap(tmp_path, monkeypatch, maskrcnn):
    from typer.testing import CliRunner

    import advisor.dense.models as dense_models
    import advisor.recommend.stages.plan as plan
    from advisor.cli.main import app

    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    # the random-init Mask R-CNN stands in for the pretrained one (no network here): the wiring is under test
    monkeypatch.setattr(plan, "_effective_offline", lambda cfg, notes: False)
    monkeypatch.setattr(dense_models, "load_dense_model", lambda model_id, **kw: maskrcnn)
    data = write_poly_coco(tmp_path / "shapes", n_images=4)
    out = tmp_path / "run"
    r = CliRunner().invoke(
        app,
        ["recommend", "--task", "instance-segmentation", "--data", str(data), "--models", MASKRCNN, "--no-bench",
         "--no-baselines", "--format", "json", "--out", str(out)],
        catch_exceptions=False,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["task"] == "instance-segmentation" and d["dataset"]["images"] == 4
    (row,) = d["candidates"]
    z = row["zero_shot"]
    assert row["model_id"] == MASKRCNN and row["role"] == "zero-shot" and not row["error"]
    assert z["iou_type"] == "segm" and z["value"] == z["map"] and 0.0 <= z["value"] <= 1.0
    assert 0.0 <= z["box"]["map"] <= 1.0 and z["protocol"].startswith("COCO segm")
    assert z["matched"] == {"cat": "cat", "dog": "dog"} and z["n_gt"] == 8
    assert d["verdict"]["metric"] == "mask mAP" and d["verdict"]["winner"] == MASKRCNN
    md = (out / "report.md").read_text()
    assert "| mask mAP | box mAP |" in md
