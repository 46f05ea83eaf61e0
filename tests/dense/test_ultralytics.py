"""Ultralytics YOLO: opt-in only, out of process (a stand-in `ultralytics` package on the child's PYTHONPATH),
boxes round-trip, crashes and offline are one-line errors, `--license commercial` excludes it and says so."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from advisor.dense.candidates import choose_rows
from advisor.dense.models import dense_candidates, load_dense_model
from advisor.errors import ModelLoadError, WeightsUnavailableOffline
from advisor.recommend.config import RunConfig

FAKE = """
class _Boxes:
    def __init__(self, rows):
        self.xyxy = [r[:4] for r in rows]
        self.conf = [r[4] for r in rows]
        self.cls = [r[5] for r in rows]

class _Result:
    def __init__(self, rows):
        self.boxes = _Boxes(rows)

class YOLO:
    def __init__(self, weights):
        if "broken" in weights:
            raise RuntimeError("cannot read " + weights)
        self.names = {0: "person", 1: "bicycle", 2: "car"}
        self.crash = "crash" in weights

    def predict(self, images, conf=0.25, iou=0.7, imgsz=640, verbose=False):
        import os
        if self.crash:  # its output ends a moment before it exits: the parent must wait for the code
            import sys, time
            sys.stdout.close()
            os.close(1)
            time.sleep(0.5)
            os._exit(7)
        from PIL import Image
        out = []
        for p in images:
            w, h = Image.open(p).size
            out.append(_Result([[1.0, 2.0, w - 1.0, h - 2.0, 0.9, 2.0], [0.0, 0.0, 5.0, 5.0, 0.4, 0.0]]))
        return out
"""


@pytest.fixture()
def fake_ultralytics(tmp_path, monkeypatch):
    pkg = tmp_path / "fake" / "ultralytics"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(FAKE))
    monkeypatch.setenv(
        "PYTHONPATH", str(tmp_path / "fake")
    )  # the child's environment; this process's sys.path is as it was
    weights = tmp_path / "weights"
    weights.mkdir()
    for n in ("yolov8n", "yolo11n"):
        (weights / f"{n}.pt").write_bytes(b"not a real checkpoint")
    monkeypatch.setenv("ADVISOR_ULTRALYTICS_WEIGHTS_DIR", str(weights))
    return weights


def test_never_a_default_candidate_and_listed_when_named():
    assert not [i for i in dense_candidates("detection") if i.model_id.startswith("pkg:ultralytics/")]
    (info,) = [i for i in dense_candidates("detection", include={"pkg:ultralytics/yolov8n"}) if i.opt_in]
    assert info.license == "AGPL-3.0-only" and info.label_set == "coco-80" and len(info.classes) == 80


def test_boxes_come_back_from_the_child_and_the_parent_never_imports_ultralytics(fake_ultralytics):
    m = load_dense_model("pkg:ultralytics/yolov8n")
    try:
        ims = [Image.new("RGB", (64, 48)), Image.new("RGB", (30, 40))]
        d0, d1 = m.predict(ims)
        np.testing.assert_allclose(d0.boxes[0], [1, 2, 63, 46])
        np.testing.assert_allclose(d1.boxes[0], [1, 2, 29, 38])
        assert d0.labels.tolist() == [2, 0] and m.classes[2] == "car"
        assert d0.scores.tolist() == pytest.approx([0.9, 0.4])
        assert m.license == "AGPL-3.0-only"
    finally:
        m.close()
    assert m._proc.poll() is not None  # the child is gone
    assert "ultralytics" not in sys.modules


def test_a_crashing_child_and_unreadable_weights_are_one_line_errors(fake_ultralytics):
    from advisor.dense.models import dense_info
    from advisor.dense.models_ultralytics import UltralyticsDetector

    info = dense_info("pkg:ultralytics/yolov8n")
    m = UltralyticsDetector(info, "crash.pt")  # the stand-in exits on its first request
    with pytest.raises(RuntimeError, match="exited with code 7"):
        m.predict([Image.new("RGB", (32, 32))])
    m.close()
    with pytest.raises(ModelLoadError, match="did not start .*cannot read broken.pt"):
        UltralyticsDetector(info, "broken.pt")


def test_offline_without_the_weights_file_fails_before_any_child(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVISOR_OFFLINE", "1")
    monkeypatch.setenv("ADVISOR_ULTRALYTICS_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsUnavailableOffline, match="not available offline"):
        load_dense_model("pkg:ultralytics/yolov8s")


def test_rows_only_when_named_and_commercial_licence_excludes_with_the_reason():
    classes = ["person", "car"]
    ids = lambda rows: {r.model_id for r in rows}  # noqa: E731
    default = choose_rows("detection", classes, RunConfig(data="/d", baselines=False, offline=True))
    assert not any(i.startswith("pkg:ultralytics/") for i in ids(default))
    named = RunConfig(data="/d", models=("pkg:ultralytics/yolov8n",), baselines=False, offline=True)
    (row,) = choose_rows("detection", classes, named)
    assert row.model_id == "pkg:ultralytics/yolov8n" and row.license == "AGPL-3.0-only" and row.error is None
    assert any("separate process" in r for r in row.reasons)
    commercial = RunConfig(
        data="/d", models=("pkg:ultralytics/yolov8n",), baselines=False, offline=True, license="commercial"
    )
    (ex,) = choose_rows("detection", classes, commercial)
    assert ex.error == "excluded: AGPL-3.0-only is copyleft, and --license commercial asks for none"
    assert ex.role == "not run"


def test_without_the_package_the_error_names_the_install_line_and_the_licence(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVISOR_ULTRALYTICS_WEIGHTS_DIR", str(tmp_path))
    (tmp_path / "yolov8n.pt").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="No module named 'ultralytics'") as e:
        load_dense_model("pkg:ultralytics/yolov8n")
    assert "pip install ultralytics" in e.value.hint and "AGPL-3.0" in e.value.hint
