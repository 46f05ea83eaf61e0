"""Catalog search normalises case, punctuation and hyphens, matches at word boundaries and ranks; untagged ids
resolve to the default tag; published-figure sort keys and bounds."""

from __future__ import annotations

import pytest

from advisor.catalog.schema import CatalogEntry, Metric
from advisor.catalog.search import squash
from advisor.catalog.store import Catalog, Filters, sort_entries
from advisor.errors import CatalogEntryNotFound


def _e(id: str, family: str, arch: str, tags: tuple[str, ...] = (), metrics: tuple[Metric, ...] = (), **kw):
    src = id.split(":")[0]
    return CatalogEntry(
        id=id,
        source=src,
        source_id=id.split(":", 1)[1],
        family=family,
        architecture=arch,
        modality=kw.pop("modality", "image"),
        task=kw.pop("task", "image-classification"),
        probeable=True,
        probe_note="n",
        tags=tags,
        metrics=metrics,
        **kw,
    )


CAT = Catalog(
    [
        _e("hf:facebook/hubert-base-ls960", "hubert", "hubert", modality="audio", task="speech-encoder"),
        _e("hf:google-bert/bert-base-uncased", "bert", "bert", modality="text", task="text-encoder"),
        _e(
            "smp:Unet-resnet34",
            "unet",
            "Unet",
            task="semantic-segmentation",
        ),
        _e(
            "torchvision:fasterrcnn_resnet50_fpn.COCO_V1",
            "faster-rcnn",
            "fasterrcnn_resnet50_fpn",
            task="object-detection",
        ),
        _e(
            "smp:DeepLabV3Plus-resnet50",
            "deeplabv3plus",
            "DeepLabV3Plus",
        ),
        _e("timm:resnet50.a1_in1k", "resnet", "resnet50", tags=("a1", "in1k")),
        _e("timm:resnet50.tv_in1k", "resnet", "resnet50", tags=("tv", "in1k", "default")),
    ]
)


def test_squash() -> None:
    assert squash("U-Net") == squash("unet") == "unet"
    assert squash("Faster R-CNN") == "fasterrcnn"
    assert squash("deeplabv3+") == "deeplabv3plus"


@pytest.mark.parametrize(
    "query, first",
    [
        ("u-net", "smp:Unet-resnet34"),
        ("UNET", "smp:Unet-resnet34"),
        ("faster r-cnn", "torchvision:fasterrcnn_resnet50_fpn.COCO_V1"),
        ("fasterrcnn", "torchvision:fasterrcnn_resnet50_fpn.COCO_V1"),
        ("deeplabv3+", "smp:DeepLabV3Plus-resnet50"),
        ("bert", "hf:google-bert/bert-base-uncased"),
    ],
)
def test_normalised_queries_find_and_rank(query: str, first: str) -> None:
    hits = CAT.search(query)
    assert hits and hits[0].id == first


def test_bert_does_not_lead_with_hubert_but_still_finds_it() -> None:
    assert [e.id for e in CAT.search("bert")] == [
        "hf:google-bert/bert-base-uncased",
        "hf:facebook/hubert-base-ls960",
    ]


def test_every_word_must_match() -> None:
    assert CAT.search("resnet50 swin") == []


def test_untagged_id_resolves_to_default_tag() -> None:
    assert CAT.get("timm:resnet50").id == "timm:resnet50.tv_in1k"
    with pytest.raises(CatalogEntryNotFound):
        CAT.get("timm:resnet18")


def test_sort_and_bounds_on_published_figures() -> None:
    a = _e(
        "hf:a/a",
        "x",
        "x",
        modality="text",
        task="text-encoder",
        metrics=(Metric("mteb-classification", "mean", 70.0, "s"),),
    )
    b = _e(
        "hf:b/b",
        "x",
        "x",
        modality="text",
        task="text-encoder",
        metrics=(Metric("mteb-classification", "mean", 60.0, "s"),),
    )
    c = _e(
        "hf:c/c",
        "x",
        "x",
        modality="audio",
        task="speech-recognition",
        metrics=(Metric("open-asr-en-shortform", "wer", 7.5, "s"),),
    )
    assert [e.id for e in sort_entries([b, c, a], "mteb", descending=True)] == ["hf:a/a", "hf:b/b", "hf:c/c"]
    assert [e.id for e in sort_entries([a, c], "wer")] == ["hf:c/c", "hf:a/a"]
    assert [e.id for e in (a, b, c) if Filters(min_metric=("mteb", 65.0)).accepts(e)] == ["hf:a/a"]
    assert [e.id for e in (a, b, c) if Filters(max_metric=("wer", 8.0)).accepts(e)] == ["hf:c/c"]
