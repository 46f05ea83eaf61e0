"""The dense readers: every format on generated fixtures (exact counts and warnings), bad input, the real assets."""

from __future__ import annotations

import json
from pathlib import Path

import dense_synth as syn
import numpy as np
import pytest
from dense_assets import asset_or_skip
from PIL import Image

from advisor.dense.readers import detect_dense, load_dense
from advisor.errors import DatasetError, UsageError


def _codes(ds) -> dict[str, int]:
    return {w.code: w.count for w in ds.warnings}


# ----------------------------------------------------------------------------------------------- COCO
def test_coco_boxes_warnings_and_source_ids(tmp_path: Path) -> None:
    root = syn.write_coco(tmp_path / "coco")
    assert detect_dense(root) == ("detection", "coco")
    ds = load_dense(root)
    assert (ds.task, ds.format, ds.classes, ds.category_ids) == ("detection", "coco", ["cat", "dog"], [1, 2])
    assert [s.id for s in ds.samples] == ["images/a.png", "images/b.png", "images/c.png"]
    a, b, c = ds.samples
    assert a.n_objects == 5 and b.n_objects == 0 and c.n_objects == 1
    assert (a.source_id, c.source_id) == (10, 12)
    assert (c.width, c.height) == (syn.W, syn.H)  # from the header: the JSON has no size
    np.testing.assert_array_equal(a.boxes[0], [1, 2, 11, 12])
    np.testing.assert_array_equal(a.boxes[2], [5, 5, 15, 25])  # the polygon's box
    np.testing.assert_array_equal(a.boxes[4], [50, 40, 64, 48])  # clipped to the 64x48 image
    assert a.crowd_mask().tolist() == [False, False, False, True, False]
    assert a.areas is not None and a.areas[0] == 80.0 and a.areas[1] == 600.0
    assert ds.objects_per_class() == {"cat": 2, "dog": 3}  # the crowd box is not counted
    assert _codes(ds) == {
        "category-0": 1, "annotation-id-0": 1, "polygon-as-box": 1, "crowd": 1, "degenerate-box": 1,
        "out-of-image-box": 1, "unlabelled-image": 1, "missing-image": 1,
    }  # fmt: skip
    assert "left out of the classes" in next(w.message for w in ds.warnings if w.code == "category-0")
    assert ds.skipped[0][0].endswith("missing.png")


def test_coco_json_file_path_and_given_classes(tmp_path: Path) -> None:
    root = syn.write_coco(tmp_path / "coco")
    ds = load_dense(root / "annotations.json", classes=["dog"])
    assert ds.classes == ["dog"] and ds.category_ids == [2]
    assert sum(s.n_objects for s in ds.samples) == 3  # the cat boxes dropped
    assert _codes(ds)["unknown-class"] == 4


def test_coco_refuses_semantic_segmentation(tmp_path: Path) -> None:
    root = syn.write_coco(tmp_path / "coco")
    with pytest.raises(DatasetError, match="not segmentation data"):
        load_dense(root, task="segmentation")


def test_coco_invalid_json_is_one_line_error(tmp_path: Path) -> None:
    f = tmp_path / "annotations.json"
    f.write_text('{"images": [], "annotations": [')
    with pytest.raises(DatasetError, match="cannot read COCO annotations"):
        load_dense(f, format="coco")


# ----------------------------------------------------------------------------------------------- VOC
def test_voc_splits_difficult_and_degenerate(tmp_path: Path) -> None:
    root = syn.write_voc(tmp_path / "voc")
    assert detect_dense(tmp_path) == ("detection", "voc")  # descends into the single subfolder
    ds = load_dense(root)
    assert ds.classes == ["Platelets", "RBC", "WBC"]
    assert [(s.id, s.split, s.n_objects) for s in ds.samples] == [
        ("JPEGImages/img0.jpg", "train", 3),
        ("JPEGImages/img1.jpg", "val", 1),
    ]
    assert ds.samples[0].crowd_mask().tolist() == [False, False, True]
    assert ds.objects_per_class() == {"Platelets": 1, "RBC": 2, "WBC": 0}
    assert _codes(ds) == {"bad-annotation": 1, "crowd": 1, "degenerate-box": 1, "missing-image": 1}
    val = load_dense(root, split="val")
    assert [s.id for s in val.samples] == ["JPEGImages/img1.jpg"]
    with pytest.raises(DatasetError, match="no images of split 'test'"):
        load_dense(root, split="test")


def test_reading_boxes_never_decodes_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    def refuse(self, *a, **k):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    assert len(load_dense(syn.write_voc(tmp_path / "voc")).samples) == 2
    assert len(load_dense(syn.write_yolo(tmp_path / "yolo")).samples) == 3
    assert len(load_dense(syn.write_coco(tmp_path / "coco")).samples) == 3


# ----------------------------------------------------------------------------------------------- YOLO
def test_yolo_names_polygons_and_bad_lines(tmp_path: Path) -> None:
    root = syn.write_yolo(tmp_path / "yolo")
    assert detect_dense(root) == ("detection", "yolo")
    ds = load_dense(root)
    assert ds.classes == ["car", "bus"]
    by_id = {s.id: s for s in ds.samples}
    assert sorted(by_id) == ["images/train/a.png", "images/train/b.png", "images/val/c.png"]
    a = by_id["images/train/a.png"]
    assert a.split == "train" and a.labels.tolist() == [0, 1, 1]
    np.testing.assert_allclose(a.boxes[0], [24, 12, 40, 36])
    np.testing.assert_allclose(a.boxes[2], [6.4, 4.8, 19.2, 19.2], rtol=1e-5)
    assert _codes(ds) == {
        "missing-image": 1, "polygon-as-box": 1, "unlabelled-image": 1, "bad-annotation": 1, "unknown-class": 1,
    }  # fmt: skip
    assert load_dense(root / "data.yaml").classes == ["car", "bus"]


def test_yolo_without_names_uses_ids(tmp_path: Path) -> None:
    root = syn.write_yolo(tmp_path / "yolo")
    (root / "data.yaml").unlink()
    ds = load_dense(root)
    assert ds.classes == [str(i) for i in range(8)]  # ids up to the largest seen (7)
    assert _codes(ds)["unnamed-classes"] == 8


# ----------------------------------------------------------------------------------------------- CSV, HF
@pytest.mark.parametrize("xywh", [False, True])
def test_box_csv(tmp_path: Path, xywh: bool) -> None:
    f = syn.write_csv(tmp_path / "csv", xywh=xywh)
    assert detect_dense(f) == ("detection", "csv")
    assert detect_dense(f.parent) == ("detection", "csv")
    ds = load_dense(f)
    assert ds.classes == ["cat", "dog"] and [s.id for s in ds.samples] == ["a.png", "b.png"]
    np.testing.assert_array_equal(ds.samples[0].boxes, [[1, 1, 11, 11], [20, 20, 30, 30]])
    assert _codes(ds) == {"unlabelled-image": 1, "missing-image": 1}


def test_hf_metadata_objects(tmp_path: Path) -> None:
    root = syn.write_hf(tmp_path / "hf")
    assert detect_dense(root) == ("detection", "hf-metadata")
    ds = load_dense(root)
    assert ds.classes == ["person", "car"]
    assert [(s.id, s.split, s.labels.tolist()) for s in ds.samples] == [
        ("train/x.png", "train", [0, 1]),
        ("train/y.png", "train", [1]),
    ]
    np.testing.assert_array_equal(ds.samples[0].boxes[1], [5, 5, 25, 25])


# ----------------------------------------------------------------------------------------------- masks
def test_index_masks_with_class_file(tmp_path: Path) -> None:
    root = syn.write_masks(tmp_path / "seg")
    assert detect_dense(root) == ("segmentation", "mask-folder")
    ds = load_dense(root)
    assert (ds.task, ds.classes, ds.ignore_index, ds.mask_values) == (
        "segmentation", ["background", "road", "car"], 255, {},
    )  # fmt: skip
    assert len(ds.samples) == 3 and ds.warnings == []
    m = ds.read_mask(ds.samples[0])
    assert m.shape == (syn.H, syn.W) and set(np.unique(m).tolist()) == {0, 1, 2, 255}


def test_binary_0_255_masks_read_as_two_classes(tmp_path: Path) -> None:
    root = syn.write_masks(tmp_path / "seg", binary=True)
    ds = load_dense(root)
    assert ds.classes == ["background", "foreground"] and ds.mask_values == {0: 0, 255: 1}
    assert _codes(ds) == {"binary-mask-255": 3}
    m = ds.read_mask(ds.samples[0])
    assert set(np.unique(m).tolist()) == {0, 1} and m[:, -1].tolist() == [1] * syn.H
    ignored = load_dense(root, binary_masks=False)
    assert ignored.mask_values == {} and ignored.classes == ["background"]


def test_mask_problems_are_counted(tmp_path: Path) -> None:
    root = syn.write_masks(tmp_path / "seg", n=5)
    syn.write_image(root / "images" / "nomask.png")
    Image.new("RGB", (syn.W, syn.H)).save(root / "masks" / "m1.png")  # colour mask
    Image.new("L", (10, 10)).save(root / "masks" / "m2.png")  # wrong size
    Image.fromarray(np.full((syn.H, syn.W), 7, np.uint8), mode="L").save(root / "masks" / "m3.png")
    ds = load_dense(root)
    assert [s.id for s in ds.samples] == ["images/m0.png", "images/m3.png", "images/m4.png"]
    assert _codes(ds) == {
        "missing-mask": 1,
        "rgb-mask": 1,
        "mask-value-undeclared": 1,
        "mask-size-mismatch": 1,
    }
    assert next(w for w in ds.warnings if w.code == "mask-value-undeclared").examples == ("7",)


def test_split_folders_image_label(tmp_path: Path) -> None:
    root = tmp_path / "membrane-like"
    (root / "train" / "label").mkdir(parents=True)
    for i in range(2):
        syn.write_image(root / "train" / "image" / f"{i}.png")
        Image.fromarray(np.zeros((syn.H, syn.W), np.uint8), mode="L").save(
            root / "train" / "label" / f"{i}.png"
        )
    syn.write_image(root / "test" / "0.png")  # unlabelled test images: not part of the pairs
    ds = load_dense(root)
    assert [(s.id, s.split) for s in ds.samples] == [
        ("train/image/0.png", "train"),
        ("train/image/1.png", "train"),
    ]


# ----------------------------------------------------------------------------------------------- not dense / errors
def test_classification_data_is_not_dense(tmp_path: Path) -> None:
    for cls in ("cat", "dog"):
        syn.write_image(tmp_path / "cls" / cls / "0.png")
    (tmp_path / "table.csv").write_text("filename,label\na.png,cat\n")
    (tmp_path / "other.json").write_text('{"rows": []}')
    for p in ("cls", "table.csv", "other.json", "nothing-here"):
        assert detect_dense(tmp_path / p) is None
    with pytest.raises(DatasetError, match="no detection/segmentation data found"):
        load_dense(tmp_path / "cls")
    with pytest.raises(DatasetError, match="dataset path not found"):
        load_dense(tmp_path / "nothing-here")
    with pytest.raises(UsageError, match="unknown dense task"):
        load_dense(tmp_path / "cls", task="classification")


# ----------------------------------------------------------------------------------------------- real assets
@pytest.mark.assets
def test_bccd_voc(shared_assets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    def refuse(self, *a, **k):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)  # sizes come from the XML, no pixel is read
    ds = load_dense(asset_or_skip(shared_assets, "detection/bccd/BCCD"))
    assert ds.format == "voc" and len(ds.samples) == 364
    assert {(s.width, s.height) for s in ds.samples} == {(640, 480)}
    assert _codes(ds) == {"degenerate-box": 2}
    kept = ds.objects_per_class()
    assert kept == {"Platelets": 361, "RBC": 4153, "WBC": 372}
    assert sum(kept.values()) + 2 == 4888  # the two degenerate RBC boxes dropped
    assert {sp: sum(s.split == sp for s in ds.samples) for sp in ("train", "val", "test")} == {
        "train": 205, "val": 87, "test": 72,
    }  # fmt: skip


@pytest.mark.assets
def test_labelme_coco_ids_from_zero(shared_assets: Path) -> None:
    f = asset_or_skip(shared_assets, "formats/labelme/examples/instance_segmentation/data_dataset_coco")
    ds = load_dense(f, task="detection")  # polygons read as boxes (auto: instance segmentation)
    assert len(ds.samples) == 3 and sum(s.n_objects for s in ds.samples) == 12
    assert "_background_" not in ds.classes and ds.num_classes == 20 and ds.category_ids == list(range(1, 21))
    assert [s.source_id for s in ds.samples] == [0, 1, 2]
    assert _codes(ds) == {"category-0": 1, "annotation-id-0": 1, "polygon-as-box": 12}


@pytest.mark.assets
def test_labelme_voc_palette_masks(shared_assets: Path) -> None:
    d = asset_or_skip(shared_assets, "formats/labelme/examples/semantic_segmentation/data_dataset_voc")
    ds = load_dense(d)
    assert ds.task == "segmentation" and ds.classes[0] == "_background_" and ds.num_classes == 21
    m = ds.read_mask(next(s for s in ds.samples if s.id.endswith("2011_000003.jpg")))
    assert set(np.unique(m).tolist()) == {0, 5, 15, 255}  # bottle, person, boundary (ignored)
    assert ds.ignore_index == 255 and ds.warnings == []


@pytest.mark.assets
def test_membrane_binary_masks(shared_assets: Path) -> None:
    ds = load_dense(asset_or_skip(shared_assets, "segmentation/membrane"))
    assert ds.format == "mask-folder" and len(ds.samples) == 30
    assert ds.classes == ["background", "foreground"] and ds.mask_values == {0: 0, 255: 1}
    assert set(np.unique(ds.read_mask(ds.samples[0])).tolist()) == {0, 1}
    assert {(s.width, s.height) for s in ds.samples} == {(512, 512)}


def test_large_coco_file_is_recognised_from_its_head(tmp_path: Path) -> None:
    from advisor.dense.readers_coco import looks_like_coco

    f = tmp_path / "instances_train.json"
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 10, "height": 10} for i in range(50)]
    f.write_text(json.dumps({"images": images, "annotations": [], "categories": []}))
    assert looks_like_coco(f, max_bytes=200)  # "annotations" lies beyond the first 200 bytes
    (tmp_path / "rows.json").write_text(json.dumps({"images": "x" * 400}))
    assert not looks_like_coco(tmp_path / "rows.json", max_bytes=200)


def test_an_image_listed_twice_is_kept_once(tmp_path: Path) -> None:
    root = syn.write_coco(tmp_path / "coco")
    doc = json.loads((root / "annotations.json").read_text())
    doc["images"].append({"id": 99, "file_name": "a.png", "width": syn.W, "height": syn.H})
    (root / "annotations.json").write_text(json.dumps(doc))
    ds = load_dense(root)
    assert [s.id for s in ds.samples] == ["images/a.png", "images/b.png", "images/c.png"]
    assert _codes(ds)["duplicate-image"] == 1 and ds.samples[0].source_id == 10


def test_yolo_roboflow_split_folders(tmp_path: Path) -> None:
    root = tmp_path / "rf"
    for split in ("train", "valid"):
        syn.write_image(root / split / "images" / "p.jpg")
        (root / split / "labels").mkdir(parents=True)
        (root / split / "labels" / "p.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 1\nnames: ['pill']\n")
    ds = load_dense(root)
    assert ds.format == "yolo" and ds.classes == ["pill"]
    assert sorted((s.id, s.split) for s in ds.samples) == [
        ("train/images/p.jpg", "train"),
        ("valid/images/p.jpg", "val"),
    ]


def test_voc_tree_with_segmentation_class(tmp_path: Path) -> None:
    root = syn.write_voc(tmp_path / "voc")
    m = np.zeros((syn.H, syn.W), np.uint8)
    m[10:20, 10:20] = 1
    (root / "SegmentationClass").mkdir()
    Image.fromarray(m, mode="L").save(root / "SegmentationClass" / "img0.png")
    (root / "class_names.txt").write_text("background\nRBC\n")
    assert detect_dense(root) == ("detection", "voc")
    seg = load_dense(root, task="segmentation")
    assert (seg.task, seg.classes, [s.id for s in seg.samples]) == (
        "segmentation", ["background", "RBC"], ["JPEGImages/img0.jpg"],
    )  # fmt: skip
    assert _codes(seg) == {"missing-mask": 1}


def test_a_corrupt_image_is_a_counted_skip(tmp_path: Path) -> None:
    root = syn.write_yolo(tmp_path / "yolo")
    (root / "images" / "train" / "a.png").write_bytes(b"not a png")
    ds = load_dense(root)
    assert sorted(s.id for s in ds.samples) == ["images/train/b.png", "images/val/c.png"]
    assert _codes(ds)["unreadable-image"] == 1
    assert any(p.endswith("a.png") and "cannot read the image header" in r for p, r in ds.skipped)


def test_voc_object_without_box_and_coco_junk_entries(tmp_path: Path) -> None:
    root = syn.write_voc(tmp_path / "voc")
    (root / "Annotations" / "img1.xml").write_text(
        "<annotation><filename>img1.jpg</filename><object><name>RBC</name></object></annotation>"
    )
    assert _codes(load_dense(root))["bad-annotation"] == 2  # broken.xml and the object without <bndbox>
    coco = syn.write_coco(tmp_path / "coco")
    doc = json.loads((coco / "annotations.json").read_text())
    doc["images"].append("junk")
    doc["annotations"].append({"id": 50, "image_id": 12, "category_id": [1], "bbox": [1, 1, 2, 2]})
    (coco / "annotations.json").write_text(json.dumps(doc))
    ds = load_dense(coco)
    assert _codes(ds)["bad-annotation"] == 1 and _codes(ds)["unknown-class"] == 1


def test_every_format_has_one_registered_reader() -> None:
    from advisor.dense.readers import FORMATS
    from advisor.dense.readers_common import dense_reader

    assert sorted(FORMATS) == ["coco", "csv", "hf-metadata", "mask-folder", "voc", "yolo"]
    with pytest.raises(ValueError, match="dense reader 'coco' is already registered"):
        dense_reader("coco")(lambda root, **kw: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(UsageError, match="unknown dense format"):
        load_dense(".", format="kitti")


def test_box_csv_image_ids_without_extension(tmp_path: Path) -> None:
    syn.write_image(tmp_path / "images" / "w1.jpg")
    (tmp_path / "train.csv").write_text("image_id,x,y,w,h,label\nw1,1,2,10,10,wheat\n")
    ds = load_dense(tmp_path / "train.csv")
    assert [s.id for s in ds.samples] == ["images/w1.jpg"] and ds.classes == ["wheat"]
    np.testing.assert_array_equal(ds.samples[0].boxes, [[1, 2, 11, 12]])


def test_voc_and_coco_sizes_that_are_not_finite_fall_back_to_the_image_header(tmp_path: Path) -> None:
    voc = syn.write_voc(tmp_path / "voc")
    xml = voc / "Annotations" / "img0.xml"
    xml.write_text(xml.read_text().replace(f"<width>{syn.W}</width>", "<width>inf</width>"))
    coco = syn.write_coco(tmp_path / "coco")
    doc = json.loads((coco / "annotations.json").read_text())
    doc["images"][0]["width"] = float("inf")  # written as Infinity, which Python's json reads back
    (coco / "annotations.json").write_text(json.dumps(doc))
    img0 = next(s for s in load_dense(voc).samples if s.id.endswith("img0.jpg"))
    first = load_dense(coco).samples[0]
    assert (img0.width, img0.height) == (first.width, first.height) == (syn.W, syn.H)
