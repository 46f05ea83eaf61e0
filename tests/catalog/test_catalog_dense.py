"""Dense catalog fields: label set, working size and post-processing, derived from torchvision, curated with their
source for the others, validated, round-tripping, and shown by `advisor catalog show|list`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from advisor.catalog.schema import DENSE_FIELDS, DENSE_TASKS, CatalogEntry
from advisor.catalog.sources_dense import (
    detector_postprocess,
    label_set_name,
    torchvision_dense_fields,
    transform_size,
)
from advisor.catalog.store import load_catalog
from advisor.cli.main import app
from advisor.errors import CatalogError

runner = CliRunner()


def _committed() -> list[CatalogEntry]:
    return list(load_catalog())


def _dense_committed() -> list[CatalogEntry]:
    return [e for e in _committed() if e.task in DENSE_TASKS]


# ------------------------------------------------------------------------------------- torchvision derivation


def test_fasterrcnn_320_reads_its_builder_defaults():
    d = torchvision_dense_fields("fasterrcnn_mobilenet_v3_large_320_fpn", "COCO_V1")
    assert d["label_set"] == "COCO-91 (80 used)" and d["n_labels"] == 80
    assert d["working_size"].startswith("shorter side 320, longer <= 640")
    assert "score > 0.05" in d["postprocess"] and "per-class NMS IoU 0.5" in d["postprocess"]
    assert "top 100 per image" in d["postprocess"] and "RPN: top 150 proposals" in d["postprocess"]
    assert "FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1.meta['categories']" in d["dense_source"]
    assert "1 '__background__', 10 'N/A'" in d["dense_source"]


def test_ssdlite_is_fixed_320_with_its_own_thresholds():
    d = torchvision_dense_fields("ssdlite320_mobilenet_v3_large", "COCO_V1")
    assert d["working_size"].startswith("320x320, aspect ratio not kept")
    assert d["postprocess"] == (
        "softmax scores; per class: score > 0.001, top 300 candidates; per-class NMS IoU 0.55; top 300 per image"
    )


def test_deeplabv3_has_voc_labels_and_the_transforms_size():
    d = torchvision_dense_fields("deeplabv3_resnet50", "COCO_WITH_VOC_LABELS_V1")
    assert (d["label_set"], d["n_labels"]) == ("VOC-21 (20 + background)", 20)
    assert (
        d["working_size"] == "shorter side 520, aspect ratio kept (SemanticSegmentation(resize_size=[520]))"
    )
    assert "argmax over the 21 classes" in d["postprocess"] and "DeepLabV3.forward" in d["dense_source"]


def test_mask_rcnn_says_masks_are_left_to_the_caller():
    d = torchvision_dense_fields("maskrcnn_resnet50_fpn", "COCO_V1")
    assert d["working_size"].startswith("shorter side 800, longer <= 1333")
    assert "masks: per-box probabilities" in d["postprocess"]


def test_values_follow_the_model_not_a_table():
    """Built with other thresholds and sizes, the text changes with them: nothing is typed in."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn, retinanet_resnet50_fpn

    from advisor.catalog.sources_common import _build_module

    frcnn = _build_module(
        lambda: fasterrcnn_mobilenet_v3_large_fpn(
            weights=None, weights_backbone=None, min_size=512, max_size=700, box_score_thresh=0.3,
            box_nms_thresh=0.4, box_detections_per_img=7,
        )
    )  # fmt: skip
    assert transform_size(frcnn.transform).startswith("shorter side 512, longer <= 700")
    assert detector_postprocess(frcnn)[0].startswith(
        "softmax over classes; score > 0.3, boxes under 0.01 px dropped; per-class NMS IoU 0.4; top 7 per image"
    )
    retina = _build_module(
        lambda: retinanet_resnet50_fpn(
            weights=None, weights_backbone=None, score_thresh=0.1, topk_candidates=9
        )
    )
    assert detector_postprocess(retina)[0] == (
        "sigmoid scores; per level: score > 0.1, top 9 candidates; per-class NMS IoU 0.5; top 300 per image"
    )


@pytest.mark.parametrize(
    "dataset, cats, want",
    [
        ("COCO", ["__background__", "person", "N/A", "car"], ("COCO-4 (2 used)", 2)),
        ("VOC", ["__background__", "cat", "dog"], ("VOC-3 (2 + background)", 2)),
        ("X", ["a", "b"], ("X-2", 2)),
    ],
)
def test_label_set_name_counts_placeholders(dataset, cats, want):
    assert label_set_name(dataset, cats) == want


# ------------------------------------------------------------------------------------------ committed catalog


def test_every_committed_dense_entry_states_labels_size_and_postprocessing():
    dense = _dense_committed()
    assert len(dense) >= 36
    for e in dense:
        for name in ("label_set", "working_size", "postprocess", "dense_source"):
            v = getattr(e, name)
            assert isinstance(v, str) and v.strip(), (e.id, name)
        # no fixed classes: an architecture whose head the user trains, or an open-vocabulary detector
        unfixed = e.label_set == "none" or str(e.label_set).startswith("open vocabulary")
        assert e.n_labels is not None or unfixed, e.id


def test_committed_non_dense_entries_carry_no_dense_fields():
    others = [e for e in _committed() if e.task not in DENSE_TASKS]
    assert others and all(all(getattr(e, n) is None for n in DENSE_FIELDS) for e in others)


def test_committed_torchvision_values_are_what_the_library_gives_now():
    e = next(e for e in _committed() if e.id == "torchvision:ssdlite320_mobilenet_v3_large.COCO_V1")
    d = torchvision_dense_fields("ssdlite320_mobilenet_v3_large", "COCO_V1")
    assert {n: getattr(e, n) for n in DENSE_FIELDS} == d


def test_curated_values_agree_with_the_libraries_and_advisors_loaders():
    import transformers

    from advisor.dense import models_hf, models_ultralytics

    by_id = {e.id: e for e in _dense_committed()}
    detr = transformers.DetrImageProcessor().size
    assert (
        f"shorter side {detr.shortest_edge}, longer <= {detr.longest_edge}"
        in by_id["hf:facebook/detr-resnet-50"].working_size
    )
    seg = transformers.SegformerImageProcessor().size
    assert by_id["hf:nvidia/segformer-b0-finetuned-ade-512-512"].working_size.startswith(
        f"{seg.width}x{seg.height}"
    )
    hf_tiny = models_hf.ENTRIES["hf:hustvl/yolos-tiny"].size
    assert (
        f"shorter side {min(hf_tiny)}, longer <= {max(hf_tiny)}" in by_id["hf:hustvl/yolos-tiny"].working_size
    )
    for i, e in by_id.items():
        if i.startswith("hf:") and e.task == "object-detection":
            assert f"score > {models_hf.DEFAULT_THRESHOLD}" in e.postprocess, i
        if i.startswith("pkg:ultralytics/"):
            m = models_ultralytics
            assert e.working_size.startswith(f"{m.SIZE}x{m.SIZE} letterbox"), i
            assert f"score > {m.CONF}; per-class NMS IoU {m.IOU}" in e.postprocess, i


# ----------------------------------------------------------------------------------------------------- schema


def _base(**kw):
    return dict(
        id="torchvision:ssd.COCO_V1", source="torchvision", source_id="SSD.COCO_V1", family="ssd",
        architecture="ssd", modality="image", task="object-detection", probe_note="a detector",
    ) | kw  # fmt: skip


def test_dense_fields_round_trip_and_old_records_load():
    e = CatalogEntry(
        **_base(
            label_set="COCO-80",
            n_labels=80,
            working_size="640x640",
            postprocess="NMS IoU 0.7",
            dense_source="x",
        )
    )
    d = e.to_dict()
    assert [k for k in d if k in DENSE_FIELDS] == list(DENSE_FIELDS)
    assert CatalogEntry.from_dict(json.loads(json.dumps(d))) == e
    old = CatalogEntry(**_base()).to_dict()
    assert not set(DENSE_FIELDS) & set(old)  # entries without them keep their on-disk form
    back = CatalogEntry.from_dict(old)
    assert back.label_set is None and back.n_labels is None and back.postprocess is None


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(n_labels=-1, dense_source="x"), "n_labels"),
        (dict(n_labels=True, dense_source="x"), "n_labels"),
        (dict(label_set="  ", dense_source="x"), "label_set must be a non-empty string"),
        (dict(postprocess=3, dense_source="x"), "postprocess must be a non-empty string"),
        (dict(label_set="COCO-80"), "dense_source"),
    ],
)
def test_bad_dense_fields_are_rejected(kw, message):
    with pytest.raises(CatalogError, match=message):
        CatalogEntry(**_base(**kw))


# -------------------------------------------------------------------------------------------------------- CLI


def test_catalog_show_prints_the_dense_fields():
    result = runner.invoke(app, ["catalog", "show", "torchvision:ssdlite320_mobilenet_v3_large.COCO_V1"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "label set COCO-91 (80 used) (80 classes)" in out
    assert "working size 320x320, aspect ratio not kept" in out
    assert "post-processing softmax scores; per class: score > 0.001" in out
    assert "dense fields from torchvision" in out


def test_catalog_show_json_and_list_carry_the_label_set():
    result = runner.invoke(app, ["catalog", "show", "pkg:ultralytics/yolov8n", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["label_set"] == "COCO-80" and data["n_labels"] == 80
    assert data["working_size"].startswith("640x640") and "NMS IoU 0.7" in data["postprocess"]
    listed = runner.invoke(app, ["catalog", "list", "--task", "semantic-segmentation", "--limit", "60"])
    assert listed.exit_code == 0, listed.output
    assert "labels" in listed.stdout and "VOC-21 (20 +" in listed.stdout and "ADE-150" in listed.stdout
