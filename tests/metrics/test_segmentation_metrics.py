"""Segmentation metrics from an accumulated confusion matrix: a hand computation, ignore_index, and why it is not
the per-image average."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advisor.dense.types import DenseDataset, DenseSample
from advisor.errors import DatasetError
from advisor.metrics import SegmentationConfusion, segmentation_metrics


def test_hand_computed_tiny_arrays():
    target = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 1, 2]])
    conf = SegmentationConfusion(4, ignore_index=255, class_names=["a", "b", "c", "d"])
    conf.update(pred, target)
    r = conf.result()
    # scored (t, p): (0,0) (0,1) (1,1) (1,1) (2,1); TP = [1, 2, 0], gt = [2, 2, 1], pred = [1, 4, 0]
    assert r.confusion.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    assert r.per_class_iou == {"a": pytest.approx(0.5), "b": pytest.approx(0.5), "c": 0.0, "d": None}
    assert r.miou == pytest.approx(1 / 3)  # over a, b, c; d is in neither ground truth nor prediction
    assert r.present_classes == ["a", "b", "c"]
    assert r.dice == {"a": pytest.approx(2 / 3), "b": pytest.approx(2 / 3), "c": 0.0, "d": None}
    assert r.pixel_accuracy == pytest.approx(3 / 5)
    assert r.mean_accuracy == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert r.fw_iou == pytest.approx(0.4 * 0.5 + 0.4 * 0.5 + 0.2 * 0.0)
    assert r.n_pixels == 5 and r.n_ignored == 1 and r.n_images == 1
    assert "3 of 4 classes present" in r.protocol and "ignore_index 255" in r.protocol


def test_ignored_pixels_do_not_count_whatever_is_predicted():
    target = np.array([[0, 255], [1, 255]])
    a, b = SegmentationConfusion(2), SegmentationConfusion(2)
    a.update(np.array([[0, 0], [1, 0]]), target)
    b.update(np.array([[0, 1], [1, 1]]), target)
    assert a.result().miou == b.result().miou == pytest.approx(1.0)
    none = SegmentationConfusion(2, ignore_index=None)
    none.update(np.array([[0, 0], [1, 0]]), target)
    assert none.result().n_target_undeclared == 2 and none.result().n_pixels == 2


def test_accumulated_differs_from_the_per_image_average():
    gt1, pr1 = np.zeros((10, 10), int), np.zeros((10, 10), int)  # all background, all right
    gt2 = np.zeros((10, 10), int)
    gt2[:, 5:] = 1
    pr2 = np.zeros((10, 10), int)  # the object missed entirely
    per_image = []
    total = SegmentationConfusion(2)
    for p, t in ((pr1, gt1), (pr2, gt2)):
        one = SegmentationConfusion(2)
        one.update(p, t)
        per_image.append(one.result().miou)
        total.update(p, t)
    assert per_image == [pytest.approx(1.0), pytest.approx(0.25)]  # image 2: (50/100 + 0) / 2
    assert np.mean(per_image) == pytest.approx(0.625)
    r = total.result()
    assert r.per_class_iou == {"0": pytest.approx(150 / 200), "1": 0.0}
    assert r.miou == pytest.approx(0.375)


def test_predictions_out_of_range_count_as_wrong():
    conf = SegmentationConfusion(2)
    conf.update(np.array([[0, 7]]), np.array([[0, 1]]))
    r = conf.result()
    assert r.n_unpredicted == 1 and r.per_class_iou["1"] == 0.0 and r.pixel_accuracy == pytest.approx(0.5)


def _mask_dataset(tmp_path: Path) -> DenseDataset:
    (tmp_path / "masks").mkdir()
    samples = []
    for i in range(3):
        m = np.zeros((8, 12), np.uint8)
        m[2:6, 3 + i : 9] = 1
        m[0, :] = 255
        Image.fromarray(m, mode="L").save(tmp_path / "masks" / f"im{i}.png")
        samples.append(
            DenseSample(
                f"images/im{i}.jpg",
                tmp_path / f"images/im{i}.jpg",
                12,
                8,
                mask_path=tmp_path / "masks" / f"im{i}.png",
            )
        )
    return DenseDataset(
        tmp_path, "segmentation", "mask-folder", ["background", "thing"], samples, ignore_index=255
    )


def test_segmentation_metrics_over_mask_files(tmp_path):
    ds = _mask_dataset(tmp_path)
    target0 = np.asarray(Image.open(tmp_path / "masks/im0.png"), dtype=np.int64)
    preds = {
        "images/im0.jpg": np.where(target0 == 255, 0, target0),
        "images/im1.jpg": tmp_path / "masks/im1.png",
    }
    r = segmentation_metrics(ds, preds)
    assert r.n_images == 3 and r.n_ignored == 3 * 12
    # im2 has no prediction: its 68 scored pixels of background and 16 of `thing` count as wrong
    assert r.n_unpredicted == 7 * 12
    assert r.per_class_iou["thing"] == pytest.approx((24 + 20) / (24 + 20 + 16))
    assert r.per_class_iou["background"] == pytest.approx((60 + 64) / (60 + 64 + 68))
    assert any("without a predicted mask" in n for n in r.notes)


def test_a_prediction_of_another_size_is_a_named_error(tmp_path):
    ds = _mask_dataset(tmp_path)
    bad = tmp_path / "bad.png"
    Image.fromarray(np.zeros((4, 4), np.uint8), mode="L").save(bad)
    with pytest.raises(DatasetError, match="bad.png: predicted mask is"):
        segmentation_metrics(ds, {"images/im0.jpg": bad})
