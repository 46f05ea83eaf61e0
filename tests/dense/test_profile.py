"""The dense profile: object counts, COCO size split, pixel shares (hand-computed), warnings; BCCD and membrane."""

from __future__ import annotations

from pathlib import Path

import dense_synth as syn
import numpy as np
import pytest
from dense_assets import asset_or_skip

from advisor.dense.profile import profile_dense, size_bin
from advisor.dense.readers import load_dense
from advisor.dense.types import DenseDataset, DenseSample, DenseWarning


def _box(x: float, y: float, side: float) -> list[float]:
    return [x, y, x + side, y + side]


def _detection_ds(tmp_path: Path) -> DenseDataset:
    """Image 0: cat 10x10 (small), dog 50x50 (medium), cat 120x120 (large), a crowd cat; image 1: none."""
    s0 = DenseSample(
        id="a.png", path=tmp_path / "a.png", width=200, height=200,
        boxes=np.asarray([_box(0, 0, 10), _box(20, 20, 50), _box(70, 70, 120), _box(0, 0, 30)], np.float32),
        labels=np.asarray([0, 1, 0, 0]), crowd=np.asarray([False, False, False, True]), split="train",
    )  # fmt: skip
    s1 = DenseSample(id="b.png", path=tmp_path / "b.png", width=100, height=50, split="val")
    warn = DenseWarning(
        "degenerate-box", 2, "2 boxes with zero or negative width/height: dropped", ("a.xml",)
    )
    return DenseDataset(tmp_path, "detection", "voc", ["cat", "dog", "eel"], [s0, s1], warnings=[warn])


def test_size_bins_follow_coco() -> None:
    assert [size_bin(a) for a in (0, 1023.9, 1024, 9215, 9216)] == [
        "small",
        "small",
        "medium",
        "medium",
        "large",
    ]


def test_detection_profile_counts(tmp_path: Path) -> None:
    p = profile_dense(_detection_ds(tmp_path))
    assert (p["images"], p["classes"], p["objects"], p["crowd_boxes"]) == (2, 3, 3, 1)
    assert p["objects_per_class"] == {"cat": 2, "dog": 1, "eel": 0}
    assert p["images_per_class"] == {"cat": 1, "dog": 1, "eel": 0}
    assert p["classes_without_objects"] == ["eel"]
    assert p["size_split"] == {"small": 1, "medium": 1, "large": 1}
    assert p["size_split_per_class"]["cat"] == {"small": 1, "medium": 0, "large": 1}
    assert p["objects_per_image"]["mean"] == 1.5 and p["objects_per_image"]["max"] == 3
    assert p["images_without_objects"] == 1 and p["imbalance_ratio"] == 2.0
    assert p["splits"] == {"train": 1, "val": 1}
    assert p["image_sizes"]["distinct"] == 2
    assert p["warnings"] == [
        {"code": "degenerate-box", "count": 2, "message": "2 boxes with zero or negative width/height: dropped",
         "examples": ["a.xml"]}
    ]  # fmt: skip


def test_coco_area_field_decides_the_size_bin(tmp_path: Path) -> None:
    ds = load_dense(syn.write_coco(tmp_path / "coco"))
    a = ds.samples[0]
    assert a.areas is not None and a.areas.tolist()[:3] == [80.0, 600.0, 200.0]
    assert a.areas.tolist()[4] == 14.0 * 8.0  # no area given: the clipped box's
    p = profile_dense(ds)
    assert p["size_split"] == {"small": 5, "medium": 0, "large": 0}
    assert {w["code"] for w in p["warnings"]} >= {"annotation-id-0", "category-0", "crowd", "missing-image"}
    assert p["n_skipped"] == 1 and p["skipped"][0]["path"].endswith("missing.png")


def test_segmentation_pixel_shares_by_hand(tmp_path: Path) -> None:
    p = profile_dense(load_dense(syn.write_masks(tmp_path / "seg")))
    # per 64x48 mask: row 0 ignored (64 px), road 24x32 = 768, car 10x20 = 200, background the other 2040
    scored = 2040 + 768 + 200
    assert p["pixel_share"] == {
        "background": round(2040 / scored, 5), "road": round(768 / scored, 5), "car": round(200 / scored, 5),
    }  # fmt: skip
    assert p["ignored_pixel_share"] == round(64 / (64 * 48), 5)
    assert p["images_per_class"] == {"background": 3, "road": 3, "car": 3}
    assert (p["masks_sampled"], p["undeclared_pixel_share"], p["ignore_index"]) == (3, 0.0, 255)


def test_segmentation_mask_sample_is_capped(tmp_path: Path) -> None:
    p = profile_dense(load_dense(syn.write_masks(tmp_path / "seg", binary=True, n=5)), max_masks=2)
    assert p["masks_sampled"] == 2 and p["images"] == 5
    assert p["pixel_share"] == {"background": 0.5, "foreground": 0.5}
    assert p["mask_values"] == {"0": 0, "255": 1}


@pytest.mark.assets
def test_bccd_profile(shared_assets: Path) -> None:
    p = profile_dense(load_dense(asset_or_skip(shared_assets, "detection/bccd")))
    assert (p["format"], p["images"], p["objects"]) == ("voc", 364, 4886)
    assert p["objects_per_class"] == {"Platelets": 361, "RBC": 4153, "WBC": 372}
    assert sum(p["size_split"].values()) == 4886
    assert [(w["code"], w["count"]) for w in p["warnings"]] == [("degenerate-box", 2)]
    assert p["splits"] == {"test": 72, "train": 205, "val": 87}


@pytest.mark.assets
def test_membrane_profile(shared_assets: Path) -> None:
    p = profile_dense(load_dense(asset_or_skip(shared_assets, "segmentation/membrane")))
    assert (p["task"], p["images"], p["class_names"]) == ("segmentation", 30, ["background", "foreground"])
    assert p["ignored_pixel_share"] == 0.0 and p["images_per_class"] == {"background": 30, "foreground": 30}
    assert abs(sum(p["pixel_share"].values()) - 1.0) < 1e-4
