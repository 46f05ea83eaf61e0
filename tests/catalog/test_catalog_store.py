"""The shipped catalog: size, coverage of the families users ask about, filters, search and suggestions."""

from __future__ import annotations

import json

import pytest

from advisor.catalog.schema import CatalogEntry
from advisor.catalog.store import Catalog, Filters, load_catalog, sort_entries
from advisor.errors import CatalogEntryNotFound, CatalogError, UsageError


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_catalog()


def test_catalog_is_large_and_ids_unique(cat):
    assert len(cat) >= 1500
    assert len(set(cat.ids())) == len(cat)


@pytest.mark.parametrize(
    "family",
    [
        "vgg",
        "resnet",
        "inception",
        "densenet",
        "efficientnet",
        "yolo",
        "detr",
        "unet",
        "deeplabv3plus",
        "bert",
        "gpt2",
        "roberta",
        "distilbert",
        "xlnet",
        "wav2vec2",
        "deepspeech",
        "whisper",
        "faster-rcnn",
        "ssd",
        "deeplabv3",
        "convnext",
        "vit",
        "deit",
        "swin",
        "dinov2",
        "clip",
        "siglip",
        "eva",
        "mobilenet",
        "efficientnet-lite",
        "minilm",
        "hubert",
    ],
)
def test_every_family_users_name_is_present(cat, family):
    assert any(e.family == family for e in cat), family


def test_detection_families_from_torchvision(cat):
    ids = cat.ids()
    assert any(i.startswith("torchvision:fasterrcnn_resnet50_fpn") for i in ids)
    assert any(i.startswith("torchvision:ssd300_vgg16") for i in ids)
    assert any(i.startswith("torchvision:deeplabv3_resnet50") for i in ids)


def test_audio_entries_have_parameter_counts(cat):
    audio = cat.filter(Filters(modality="audio"))
    for fam in ("wav2vec2", "whisper", "hubert"):
        hits = [e for e in audio if e.family == fam]
        # Leaderboard-only rows whose table gives no size (-1) stay unknown, with no source: never guessed.
        known = [e for e in hits if e.provenance[:1] != ("open-asr-leaderboard",) or e.n_params is not None]
        assert known and all(e.n_params and e.n_params > 1_000_000 for e in known), fam
        assert all(e.n_params_source is None for e in hits if e.n_params is None), fam


def test_commercial_filter_excludes_non_commercial(cat):
    commercial = cat.filter(Filters(license="commercial"))
    assert commercial
    assert all(e.license_class == "permissive" for e in commercial)  # copyleft (GPL/AGPL) excluded
    nc = [e for e in cat if e.license_class == "non-commercial"]
    assert nc and not set(e.id for e in nc) & set(e.id for e in commercial)


def test_filters_combine(cat):
    hits = cat.filter(Filters(modality="image", source="torchvision", max_params=10e6, probeable=True))
    assert hits
    assert all(
        e.modality == "image" and e.source == "torchvision" and e.n_params <= 10e6 and e.probeable
        for e in hits
    )


def test_non_probeable_entries_say_why(cat):
    for e in cat:
        if not e.probeable:
            assert e.probe_note


def test_get_accepts_bare_names_and_suggests_on_miss(cat):
    assert cat.get("resnet50.a1_in1k").id == "timm:resnet50.a1_in1k"
    with pytest.raises(CatalogEntryNotFound) as ei:
        cat.get("timm:resnet50.a1_in1")
    assert "timm:resnet50.a1_in1k" in ei.value.hint


def test_search_requires_all_words(cat):
    hits = cat.search("convnext in22k")
    assert hits and all("convnext" in e.id and "in22k" in e.id for e in hits)
    with pytest.raises(UsageError):
        cat.search("   ")


def test_sort_puts_unknown_last(cat):
    entries = cat.filter(Filters(modality="image"))[:200]
    ranked = sort_entries(entries, "top1", descending=True)
    known = [e.imagenet_top1 for e in ranked if e.imagenet_top1 is not None]
    assert known == sorted(known, reverse=True)
    tail = ranked[len(known) :]
    assert all(e.imagenet_top1 is None for e in tail)
    with pytest.raises(UsageError):
        sort_entries(entries, "speed")


def test_sort_is_best_first_by_default_and_either_way_on_request(cat):
    """`catalog list --sort top1 --limit 5` listed the five *worst* models (ascending); the default is now best
    first for each key: highest accuracy / mAP / newest first, lowest WER / size first, ids A-Z."""
    from typer.testing import CliRunner

    from advisor.cli.main import app

    entries = cat.filter(Filters(modality="image"))[:200]
    top1 = [e.imagenet_top1 for e in sort_entries(entries, "top1") if e.imagenet_top1 is not None]
    assert top1 == sorted(top1, reverse=True) and len(set(top1)) > 1
    small = [e.n_params for e in sort_entries(entries, "n_params") if e.n_params is not None]
    assert small == sorted(small)
    asc = [
        e.imagenet_top1
        for e in sort_entries(entries, "top1", descending=False)
        if e.imagenet_top1 is not None
    ]
    assert asc == sorted(asc)

    def ids(*args: str) -> list[str]:
        r = CliRunner().invoke(
            app, ["catalog", "list", "--modality", "image", "--limit", "3", "-f", "json", *args]
        )
        assert r.exit_code == 0, r.output
        return [e["id"] for e in json.loads(r.stdout)["entries"]]

    assert ids("--sort", "top1") == ids("--sort", "top1", "--desc") != ids("--sort", "top1", "--asc")


def test_duplicate_ids_are_refused():
    e = CatalogEntry(
        id="local:a",
        source="local",
        source_id="a",
        family="x",
        architecture="x",
        modality="image",
        task="image-classification",
        probeable=True,
    )
    with pytest.raises(CatalogError, match="duplicate"):
        Catalog([e, e])


def test_extra_entries_from_environment(tmp_path, monkeypatch):
    import json

    from advisor.catalog import store

    extra = tmp_path / "mine.jsonl"
    e = CatalogEntry(
        id="local:my-net",
        source="local",
        source_id="/models/my.onnx",
        family="mine",
        architecture="mine",
        modality="image",
        task="image-feature-extraction",
        probeable=True,
        probe_note="ONNX file",
    )
    extra.write_text(json.dumps(e.to_dict()) + "\n")
    monkeypatch.setenv(store.LOCAL_ENV, str(extra))
    assert load_catalog().get("local:my-net") == e
