"""`ModelId`: parsed once, frozen, ``str()`` round-trips exactly, one rule for bare names, cache keys unchanged."""

from __future__ import annotations

import dataclasses

import pytest

from advisor.errors import UsageError
from advisor.io import stable_hash
from advisor.models import ModelId, parse_model_id


def test_parse_timm_id_with_params():
    mid = ModelId.parse("timm:resnet50.a1_in1k?input_size=224")
    assert (mid.source, mid.name, mid.tag, mid.params) == (
        "timm",
        "resnet50",
        "a1_in1k",
        (("input_size", "224"),),
    )
    assert mid.ref == "resnet50.a1_in1k" and mid.base == "timm:resnet50.a1_in1k"
    assert mid.options == {"input_size": "224"} and mid.path is None
    assert str(mid) == "timm:resnet50.a1_in1k?input_size=224"


@pytest.mark.parametrize(
    ("text", "source", "name", "tag"),
    [
        ("timm:test_vit", "timm", "test_vit", None),
        ("timm:convnext_tiny.fb_in22k_ft_in1k", "timm", "convnext_tiny", "fb_in22k_ft_in1k"),
        ("torchvision:resnet50.IMAGENET1K_V2", "torchvision", "resnet50", "IMAGENET1K_V2"),
        ("hf:facebook/dinov2-small", "hf", "facebook/dinov2-small", None),
        ("hf:org/name@v1.0?pooling=cls", "hf", "org/name", "v1.0"),
        ("hf:/models/saved@dir", "hf", "/models/saved@dir", None),
        ("pkg:efficientnet_lite0", "pkg", "efficientnet_lite0", None),
        ("pkg:all-MiniLM-L6-v2?max_length=128", "pkg", "all-MiniLM-L6-v2", None),
        (
            "local:/data/my.model.v2.onnx?modality=audio&input_scale=32767",
            "local",
            "/data/my.model.v2.onnx",
            None,
        ),
        ("/data/model.onnx", "local", "/data/model.onnx", None),
        ("./rel/model.pt2?trust_pickle=1", "local", "./rel/model.pt2", None),
        ("~/m.tflite", "local", "~/m.tflite", None),
        ("weights.safetensors?arch=timm:resnet18", "local", "weights.safetensors", None),
        ("TIMM:resnet18", "timm", "resnet18", None),
        ("other:thing", "other", "thing", None),
    ],
)
def test_round_trip_and_fields(text, source, name, tag):
    mid = ModelId.parse(text)
    assert (mid.source, mid.name, mid.tag) == (source, name, tag)
    assert str(mid) == text
    assert str(ModelId.parse(f"  {text}\n")) == text  # whitespace is the only thing dropped
    assert ModelId.parse(mid) is mid


def test_parse_model_id_tuple_is_unchanged():
    """The old (source, name, params) view: name keeps the tag, as the loaders take it."""
    assert parse_model_id("timm:resnet50.a1_in1k?input_size=224") == (
        "timm",
        "resnet50.a1_in1k",
        {"input_size": "224"},
    )
    assert parse_model_id("hf:org/name@main") == ("hf", "org/name@main", {})
    assert parse_model_id("/x/model.onnx?modality=audio") == ("local", "/x/model.onnx", {"modality": "audio"})


def test_bare_name_rule_is_the_registry_one(tmp_path):
    """A bare name is a local file when it looks like a path, else an error (never silently timm)."""
    with pytest.raises(UsageError) as ei:
        ModelId.parse("resnet50")
    assert "source prefix" in ei.value.message and "timm:" in (ei.value.hint or "")
    (tmp_path / "modeldir").mkdir()
    assert ModelId.parse(str(tmp_path / "modeldir")).source == "local"
    assert not ModelId.parse("model.onnx").prefixed and str(ModelId.parse("model.onnx")) == "model.onnx"
    with pytest.raises(UsageError):
        ModelId.parse("   ")


def test_frozen_and_canonical_when_built_by_hand():
    mid = ModelId("timm", "resnet18", "a1_in1k", (("num_classes", "10"),))
    assert str(mid) == "timm:resnet18.a1_in1k?num_classes=10"
    assert mid == ModelId.parse("timm:resnet18.a1_in1k?num_classes=10")
    assert str(ModelId("hf", "org/x", "rev")) == "hf:org/x@rev"
    assert str(ModelId("local", "/m.onnx", prefixed=False)) == "/m.onnx"
    with pytest.raises(dataclasses.FrozenInstanceError):
        mid.source = "hf"  # type: ignore[misc]


def test_cache_key_from_a_parsed_id_is_byte_identical():
    """Keys hash ``str(mid)``; pinned against the value the id string gave before `ModelId` existed."""
    for text, key in (
        ("timm:resnet50.a1_in1k?input_size=224", "cac0083efb74c61c30f402ea"),
        ("local:/data/m.onnx?modality=audio", "caad54a0c6cda55997fb594c"),
    ):
        assert stable_hash({"model_id": str(ModelId.parse(text)), "pretrained": True}, length=24) == key


def test_every_command_uses_the_same_bare_name_rule():
    """Candidate selection and the published-bench lookup read ids as the registry does (no bare name is timm)."""
    from advisor.bench.published import split_model_id
    from advisor.recommend.candidates import is_local_path

    assert is_local_path("local:/x/m.onnx") and is_local_path("not-here/model.onnx")
    assert (
        not is_local_path("timm:resnet50")
        and not is_local_path("hf:/abs/dir")
        and not is_local_path("resnet50")
    )
    assert split_model_id("timm:resnet50.a1_in1k?input_size=224") == ("timm", "resnet50", "a1_in1k")
    assert split_model_id("torchvision:resnet50") == ("torchvision", "resnet50", None)
    assert split_model_id("resnet50") == ("", "resnet50", None)  # was silently taken as timm:resnet50
    assert split_model_id("/m/model.v2.onnx")[0] == "local"


def test_catalog_entry_name_is_the_id_ref():
    from advisor.catalog.store import _bare_name

    assert _bare_name("hf:org/name@rev") == "org/name@rev"
    assert _bare_name("timm:resnet50.a1_in1k?input_size=224") == "resnet50.a1_in1k"
    assert _bare_name("resnet50") == "resnet50"


def test_hf_loader_takes_repo_and_revision_from_the_parsed_id(monkeypatch):
    from advisor.errors import WeightsUnavailableOffline
    from advisor.models import load_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableOffline) as ei:
        load_model("hf:some-org/surely-uncached-xyz@v2?pooling=cls")
    assert "download some-org/surely-uncached-xyz`" in (ei.value.hint or "")
    assert "@v2" not in (ei.value.hint or "")


def test_local_content_key_of_an_empty_local_id_is_none(tmp_path, monkeypatch):
    from advisor.models.local import local_content_key

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"x")
    assert local_content_key("local:") is None  # not the working folder's files
    assert local_content_key("timm:resnet18") is None and local_content_key("resnet18") is None
    assert local_content_key("local:m.onnx")["sha256"] == local_content_key("m.onnx")["sha256"]


def test_finetune_reads_untrainable_files_with_the_same_rule(tmp_path):
    from advisor.finetune import untrainable_reason

    assert "onnx file" in untrainable_reason("local:/nowhere/m.onnx?modality=audio")
    assert "tflite file" in untrainable_reason("not-here/m.tflite")  # a bare path is local, existing or not
    assert untrainable_reason("timm:resnet18") is None and untrainable_reason("resnet18") is None
    assert "onnx runtime" in untrainable_reason("pkg:paraphrase-MiniLM-L3-v2", "onnx")
