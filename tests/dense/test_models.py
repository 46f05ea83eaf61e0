"""Dense models: random-init torchvision and smp builds offline, the packaged face detectors, person segmenter and
text detector on hand-labelled images, offline errors, and the zero-shot route of `recommend` end to end on a face."""

from __future__ import annotations

import json

import numpy as np
import pytest

from advisor.dense.models import DenseModel, dense_candidates, dense_info, load_dense_model
from advisor.dense.results import Role
from advisor.dense.types import Detections
from advisor.errors import ModelLoadError

# skimage's astronaut (in the scikit-image wheel): the face box labelled by hand on the image (x1, y1, x2, y2),
# hairline to chin and cheek to cheek (checked again by eye on a 20-px grid: cheeks at x 180 / 270, hairline y 75,
# chin y 177)
ASTRONAUT_FACE = (178.0, 75.0, 271.0, 178.0)
TEXT_LINES = ("Hello advisor text", "second line 123")


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def astronaut():
    data = pytest.importorskip("skimage.data", reason="the labelled face image comes from scikit-image")
    from PIL import Image

    return Image.fromarray(data.astronaut())


def test_the_list_has_both_tasks_with_label_sets_and_unknown_ids_are_one_line_errors():
    det = {i.model_id: i for i in dense_candidates("detection")}
    seg = {i.model_id: i for i in dense_candidates("segmentation")}
    assert det["pkg:centerface"].label_set == "face" and det["pkg:centerface"].pretrained_available_offline
    assert det["torchvision:ssdlite320_mobilenet_v3_large"].classes[1] == "person"
    assert len(det["torchvision:ssdlite320_mobilenet_v3_large"].classes) == 91
    assert seg["torchvision:lraspp_mobilenet_v3_large"].label_set == "voc-21"
    assert seg["pkg:selfie-segmenter"].classes == ("background", "person")
    assert det["pkg:mtcnn"].license == "MIT" and det["pkg:ppocr-det"].label_set == "text"
    assert "rapidocr-onnxruntime==1.4.4" in (det["pkg:ppocr-det"].pip or "")
    assert (
        seg["smp:Unet-resnet34"].classes == () and not seg["smp:Unet-resnet34"].pretrained_available_offline
    )
    assert list(det)[:4] == ["pkg:centerface", "pkg:blazeface", "pkg:mtcnn", "pkg:ppocr-det"]  # offline first
    with pytest.raises(ModelLoadError, match="not a detection/segmentation model"):
        dense_info("torchvision:resnet18")


def test_pretrained_torchvision_weights_offline_and_smp_pretrained_are_one_line_errors(tmp_path, monkeypatch):
    import torch

    from advisor.errors import WeightsUnavailableOffline

    monkeypatch.setenv("ADVISOR_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsUnavailableOffline, match="not available offline"):
        load_dense_model("torchvision:ssdlite320_mobilenet_v3_large", pretrained=True)
    with pytest.raises(ModelLoadError, match="no pretrained segmentation weights"):
        load_dense_model("smp:Unet-resnet34", pretrained=True)


def test_a_missing_package_names_the_pip_line(monkeypatch):
    import advisor.models.packaged as packaged

    monkeypatch.setattr(packaged, "package_dir", lambda module: None)
    with pytest.raises(ModelLoadError, match="not installed") as e:
        load_dense_model("pkg:ppocr-det")
    assert e.value.hint == "pip install --no-deps rapidocr-onnxruntime==1.4.4"


@pytest.mark.parametrize(
    "model_id", ["torchvision:ssdlite320_mobilenet_v3_large", "torchvision:lraspp_mobilenet_v3_large"]
)
def test_random_init_builds_predict_per_image_in_image_pixels(model_id):
    from PIL import Image

    m = load_dense_model(model_id, pretrained=False)
    assert m.pretrained is False and m.n_params > 1_000_000 and m.label_set in ("coco-91", "voc-21")
    assert isinstance(m, DenseModel) and m.license.startswith("BSD-3-Clause")
    ims = [Image.new("RGB", (96, 64), (120, 30, 200)), Image.new("RGB", (50, 70), (10, 200, 30))]
    out = m.predict(ims)
    assert len(out) == 2
    if m.task == "detection":
        for d, im in zip(out, ims, strict=True):
            assert isinstance(d, Detections) and d.boxes.shape[1] == 4 and len(d.scores) == len(d)
            assert (d.boxes[:, 2] <= im.width + 1e-3).all() and (d.boxes[:, 3] <= im.height + 1e-3).all()
    else:
        assert [o.shape for o in out] == [(64, 96), (70, 50)] and all(o.max() < 21 for o in out)


@pytest.mark.parametrize("model_id", ["smp:Unet-resnet34", "smp:DeepLabV3Plus-resnet34"])
def test_smp_random_init_builds_predict_class_maps_at_the_image_size(model_id):
    pytest.importorskip("segmentation_models_pytorch", reason="smp is optional")
    from PIL import Image

    m = load_dense_model(model_id, pretrained=False, input_size=(100, 60))
    assert m.input_size == (96, 64) and m.classes == ["class 0", "class 1"] and m.n_params > 1_000_000
    assert isinstance(m, DenseModel) and m.label_set == "none"
    out = m.predict([Image.new("RGB", (50, 70), (90, 20, 10)), Image.new("RGB", (33, 17))])
    assert [o.shape for o in out] == [(70, 50), (17, 33)] and all(o.dtype == np.int64 for o in out)
    assert all(set(np.unique(o)) <= {0, 1} for o in out)


@pytest.mark.parametrize("model_id", ["pkg:centerface", "pkg:blazeface", "pkg:mtcnn"])
def test_packaged_face_detectors_find_the_hand_labelled_face(model_id, astronaut):
    try:
        m = load_dense_model(model_id)
    except ModelLoadError as e:
        pytest.skip(f"package not installed: {e}")
    (d,) = m.predict([astronaut])
    assert len(d) >= 1 and m.classes == ["face"] and m.label_set == "face"
    assert d.boxes.dtype == np.float32 and d.scores.dtype == np.float32 and (d.labels == 0).all()
    top = d.boxes[int(np.argmax(d.scores))]
    assert _iou(top, ASTRONAUT_FACE) >= 0.6 and d.scores.max() > 0.8


def test_selfie_segmenter_marks_the_person(astronaut):
    try:
        m = load_dense_model("pkg:selfie-segmenter")
    except ModelLoadError as e:
        pytest.skip(f"package not installed: {e}")
    (mask,) = m.predict([astronaut])
    x1, y1, x2, y2 = (int(v) for v in ASTRONAUT_FACE)
    assert mask.shape == (512, 512) and set(np.unique(mask)) <= {0, 1}
    assert mask[y1:y2, x1:x2].mean() > 0.9  # the face is person
    assert mask[:40, 440:].mean() < 0.2  # the top-right corner is background


def test_ppocr_text_detector_boxes_each_rendered_line():
    from PIL import Image, ImageDraw, ImageFont

    try:
        m = load_dense_model("pkg:ppocr-det")
    except ModelLoadError as e:
        pytest.skip(f"package not installed: {e}")
    im = Image.new("RGB", (400, 200), "white")
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=28)
    truth = []
    for text, xy in zip(TEXT_LINES, ((20, 30), (40, 120)), strict=True):
        draw.text(xy, text, fill="black", font=font)
        truth.append(draw.textbbox(xy, text, font=font))
    (d,) = m.predict([im])
    assert len(d) == 2 and m.classes == ["text"] and d.scores.min() > 0.9
    for t in truth:
        assert max(_iou(b, t) for b in d.boxes) >= 0.6
    (blank,) = m.predict([Image.new("RGB", (128, 96), "white")])
    assert len(blank) == 0


def test_recommend_takes_the_zero_shot_route_on_a_labelled_face(astronaut, tmp_path, monkeypatch):
    try:
        load_dense_model("pkg:centerface")
    except ModelLoadError as e:
        pytest.skip(f"package not installed: {e}")
    from advisor.api import recommend

    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "faces").mkdir()
    astronaut.save(tmp_path / "faces" / "astronaut.png")
    x1, y1, x2, y2 = ASTRONAUT_FACE
    doc = {
        "images": [{"id": 1, "file_name": "astronaut.png", "width": 512, "height": 512}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "faces"}],
    }
    (tmp_path / "faces" / "annotations.json").write_text(json.dumps(doc))
    res = recommend(
        tmp_path / "faces",
        models=("pkg:centerface",),
        baselines=False,
        bench=False,
        out=str(tmp_path / "run"),
    )
    assert res.task == "detection" and res.verdict["route"] == "zero-shot"
    (row,) = res.candidates
    z = row.zero_shot
    assert z["matched"] == {"faces": "face"} and z["classes_matched"] == z["classes_total"] == 1
    assert z["map50"] == pytest.approx(1.0) and z["value"] >= 0.5  # found at IoU .5; box tightness sets mAP
    assert "use pkg:centerface as is" in res.verdict["headline"]
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Zero-shot predictions on sample images" in html and 'stroke="#dc2626"' in html  # boxes drawn


def test_named_ids_are_sorted_into_dense_rows_backbones_or_rows_saying_why():
    """`--models` with a catalog torchvision id (weights tag included), an smp Arch-encoder advisor does not list,
    a detector checkpoint the dense loaders do not run, a model of the other task and a plain backbone: each gets
    the row it should (they used to be refused, silently dropped, or taken for a backbone)."""
    pytest.importorskip("segmentation_models_pytorch", reason="smp is optional")
    from advisor.dense.candidates import choose_rows
    from advisor.recommend.config import RunConfig

    named = (
        "torchvision:ssdlite320_mobilenet_v3_large.COCO_V1",  # the catalog's id: the DEFAULT weights' tag
        "torchvision:fasterrcnn_resnet50_fpn.COCO_V1",  # a torchvision detector the dense loaders do not build
        "hf:facebook/detr-resnet-101",  # in the catalog as a detector, not registered by advisor.dense
        "torchvision:fcn_resnet50",  # a segmenter, in a detection run
        "pkg:efficientnet_lite0",  # an image backbone
    )
    cfg = RunConfig(data="/d", models=named, baselines=False, offline=True)
    rows = {r.model_id: r for r in choose_rows("detection", ["cell"], cfg)}
    ssd = rows["torchvision:ssdlite320_mobilenet_v3_large"]
    assert (
        ssd.role == Role.ARCH and ssd.error is None
    )  # no COCO class shared, offline: timed with random weights
    assert "loaders do not run" in (rows["torchvision:fasterrcnn_resnet50_fpn.COCO_V1"].error or "")
    detr = rows["hf:facebook/detr-resnet-101"]
    assert "the catalog lists it as object-detection" in (detr.error or "") and detr.role != Role.BACKBONE
    assert (
        "a segmentation model, and this run is --task detection (name it in a --task segmentation run)"
        in (rows["torchvision:fcn_resnet50"].error or "")
    )
    assert rows["pkg:efficientnet_lite0"].role == Role.BACKBONE
    assert rows["pkg:efficientnet_lite0 (random init)"].role == Role.TWIN
    assert len(rows) == len(named) + 1  # nothing dropped
    # refused rows say "not run", not the role of a model that was scored (they read "zero-shot" before)
    refused = [r for r in rows.values() if r.error]
    assert len(refused) == 3 and {r.role for r in refused} == {Role.NOT_RUN}

    seg = RunConfig(data="/d", models=("smp:FPN-tu-efficientnet_lite0", "smp:Unet-nope"), baselines=False)
    rows = {r.model_id: r for r in choose_rows("segmentation", ["membrane"], seg)}
    assert (
        rows["smp:FPN-tu-efficientnet_lite0"].role == Role.ARCH
        and rows["smp:FPN-tu-efficientnet_lite0"].error is None
    )
    # an smp architecture has no label set to share: its note says its head is trained on the user's classes
    # (it said "label set shares no class with the data" before)
    assert rows["smp:FPN-tu-efficientnet_lite0"].reasons == [
        "no label set of its own: its head is trained on your classes (timed only here)"
    ]
    assert rows["smp:Unet-nope"].role == Role.NOT_RUN
    assert "segmentation_models_pytorch can build" in (rows["smp:Unet-nope"].error or "")
    from PIL import Image

    m = load_dense_model("smp:FPN-tu-efficientnet_lite0", pretrained=False, input_size=(64, 64))
    (out,) = m.predict([Image.new("RGB", (50, 40))])
    assert out.shape == (40, 50)


def test_a_named_instance_segmenter_joins_a_detection_run_as_a_detector():
    """Mask R-CNN named in a detection run is a zero-shot row (online) or a timed architecture (offline), saying
    that its boxes are what is scored; it is never a default candidate of a detection run."""
    from advisor.dense.candidates import BOXES_NOTE, choose_rows
    from advisor.recommend.config import RunConfig

    mrcnn = "torchvision:maskrcnn_resnet50_fpn"
    for offline, role in ((False, Role.ZERO_SHOT), (True, Role.ARCH)):
        cfg = RunConfig(data="/d", models=(mrcnn,), baselines=False, offline=offline)
        (row,) = choose_rows("detection", ["person", "dog"], cfg)
        assert (row.model_id, row.role, row.error) == (mrcnn, role, None) and BOXES_NOTE in row.reasons
    default = choose_rows("detection", ["person"], RunConfig(data="/d", baselines=False, offline=False))
    assert mrcnn not in {r.model_id for r in default}
