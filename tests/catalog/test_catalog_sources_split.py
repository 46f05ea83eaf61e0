"""The per-source modules split out of `advisor.catalog.build`: branches the shared tables do not reach."""

from __future__ import annotations

import pytest

import advisor.catalog.build as build
from advisor.catalog import sources_common, sources_timm, sources_torchvision
from advisor.catalog.sources_common import _size3
from advisor.catalog.sources_timm import _timm_probe
from advisor.catalog.sources_torchvision import _tv_note, _tv_task


def test_build_reexports_the_split_out_names() -> None:
    assert build.timm_entries is sources_timm.timm_entries
    assert build.torchvision_entries is sources_torchvision.torchvision_entries
    assert build.locate_sources is sources_common.locate_sources
    assert build.REQUIRED_SOURCES == sources_common.REQUIRED_SOURCES
    assert set(build.__all__) <= set(dir(build))


@pytest.mark.parametrize(
    ("text", "size"), [("3x224x224", (3, 224, 224)), ("224x224", None), ("", None), (None, None)]
)
def test_size3_takes_three_dimensions_only(text: str | None, size: tuple[int, int, int] | None) -> None:
    assert _size3(text) == size


def _row(arch: str, num_classes: str = "10") -> dict[str, str]:
    return {"architecture": arch, "num_classes": num_classes, "hf_hub_id": "timm/x"}


def test_timm_probe_architecture_missing_from_installed_timm_is_not_probeable() -> None:
    n, feat, probeable, note = _timm_probe(_row("no_such_arch"), available=set(), count_params=True)
    assert (n, feat, probeable) == (None, None, False)
    assert "'no_such_arch' is not in the installed timm" in note


def test_timm_probe_counts_a_tiny_architecture_on_meta_device() -> None:
    import timm

    n, feat, probeable, note = _timm_probe(_row("test_vit"), available={"test_vit"}, count_params=True)
    expected = sum(
        p.numel() for p in timm.create_model("test_vit", pretrained=False, num_classes=10).parameters()
    )
    assert (n, probeable) == (expected, True)
    assert feat is not None and feat > 0
    assert note == "timm architecture; weights from the Hugging Face hub (timm/x)"


def test_timm_probe_records_an_architecture_that_cannot_be_built() -> None:
    # listed as available, but timm has no such model: the error is noted, the count stays unknown
    n, feat, probeable, note = _timm_probe(
        _row("no_such_arch"), available={"no_such_arch"}, count_params=True
    )
    assert (n, feat, probeable) == (None, None, True)
    assert "parameter count unavailable (" in note


def test_timm_probe_without_counting_leaves_params_unknown() -> None:
    assert _timm_probe(_row("test_vit"), available={"test_vit"}, count_params=False)[:3] == (None, None, True)


@pytest.mark.parametrize(
    ("mask", "kp", "task"),
    [("40.1", "", "instance-segmentation"), ("", "65.0", "keypoint-detection"), ("", "", "object-detection")],
)
def test_tv_detection_task_from_published_metrics(mask: str, kp: str, task: str) -> None:
    row = {"task": "detection", "COCO-val2017:mask_map": mask, "COCO-val2017:kp_map": kp}
    assert _tv_task(row) == ("image", task)


def test_tv_note_per_task_kind() -> None:
    assert "classifier's input" in _tv_note("classification", "image-classification")
    assert "quantized int8" in _tv_note("quantization", "image-classification")
    assert _tv_note("segmentation", "semantic-segmentation").startswith("semantic-segmentation model")
