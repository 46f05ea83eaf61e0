"""Dense models: random-init torchvision builds offline, the packaged face detectors and person segmenter on a
hand-labelled face, latency records, and the zero-shot route of `recommend` end to end on that face."""

from __future__ import annotations

import json

import numpy as np
import pytest

from advisor.dense.models import dense_candidates, dense_info, load_dense_model
from advisor.dense.types import Detections
from advisor.errors import ModelLoadError

# skimage's astronaut (in the scikit-image wheel): the face box labelled by hand on the image (x1, y1, x2, y2),
# hairline to chin and cheek to cheek
ASTRONAUT_FACE = (178.0, 75.0, 271.0, 178.0)


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
    with pytest.raises(ModelLoadError, match="not a detection/segmentation model"):
        dense_info("torchvision:resnet18")


@pytest.mark.parametrize(
    "model_id", ["torchvision:ssdlite320_mobilenet_v3_large", "torchvision:lraspp_mobilenet_v3_large"]
)
def test_random_init_builds_predict_per_image_in_image_pixels(model_id):
    from PIL import Image

    m = load_dense_model(model_id, pretrained=False)
    assert m.pretrained is False and m.n_params > 1_000_000
    ims = [Image.new("RGB", (96, 64), (120, 30, 200)), Image.new("RGB", (50, 70), (10, 200, 30))]
    out = m.predict(ims)
    assert len(out) == 2
    if m.task == "detection":
        for d, im in zip(out, ims, strict=True):
            assert isinstance(d, Detections) and d.boxes.shape[1] == 4 and len(d.scores) == len(d)
            assert (d.boxes[:, 2] <= im.width + 1e-3).all() and (d.boxes[:, 3] <= im.height + 1e-3).all()
    else:
        assert [o.shape for o in out] == [(64, 96), (70, 50)] and all(o.max() < 21 for o in out)


@pytest.mark.parametrize("model_id", ["pkg:centerface", "pkg:blazeface"])
def test_packaged_face_detectors_find_the_hand_labelled_face(model_id, astronaut):
    try:
        m = load_dense_model(model_id)
    except ModelLoadError as e:
        pytest.skip(f"package not installed: {e}")
    (d,) = m.predict([astronaut])
    assert len(d) >= 1 and m.classes == ["face"]
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


def test_dense_latency_record_says_what_was_timed():
    from advisor.dense.latency import measure_dense_latency

    m = load_dense_model("torchvision:lraspp_mobilenet_v3_large", pretrained=False)
    rec = measure_dense_latency(m, (64, 48), repeats=3)
    assert rec["p50_ms"] > 0 and rec["p90_ms"] >= rec["p50_ms"] and rec["size"] == [64, 48]
    assert "decoding and NMS" in rec["what"] and isinstance(rec["unreliable"], bool)


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
