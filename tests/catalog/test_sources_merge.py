"""Entries of the same weights from several sources merge into one (earlier source's known fields win)."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.catalog.schema import CatalogEntry, Metric
from advisor.catalog.sources_merge import add_metrics, merge_entries
from advisor.catalog.sources_openclip import OPENCLIP_RESULTS, ZERO_SHOT, openclip_metrics


def _e(id: str, **kw: object) -> CatalogEntry:
    base: dict[str, object] = dict(
        id=id,
        source="hf",
        source_id=id[3:],
        family="f",
        architecture="a",
        modality="text",
        task="text-encoder",
        probeable=True,
        probe_note="n",
    )
    base.update(kw)
    return CatalogEntry(**base)  # type: ignore[arg-type]


def test_merge_keeps_first_known_fields_and_lists_all_sources() -> None:
    curated = _e(
        "hf:Org/M", n_params=100, n_params_source="counted", metrics=(Metric("d", "acc", 1.0, "s1"),)
    )
    mteb = _e(
        "hf:org/m",
        n_params=99,
        n_params_source="published",
        revision="abc",
        languages=("eng-Latn",),
        metrics=(Metric("d", "acc", 2.0, "s2"), Metric("e", "acc", 3.0, "s2")),
        provenance=("mteb",),
    )
    other = _e("hf:org/other", provenance=("mteb",))
    out = merge_entries([curated], [mteb, other])
    assert [e.id for e in out] == ["hf:Org/M", "hf:org/other"]
    m = out[0]
    assert (m.n_params, m.n_params_source) == (100, "counted")  # counted beats published
    assert (m.revision, m.languages) == ("abc", ("eng-Latn",))  # unknown fields filled
    assert [(x.dataset, x.value) for x in m.metrics] == [("d", 1.0), ("e", 3.0)]
    assert m.provenance == ("curated", "mteb")


def test_add_metrics_by_id() -> None:
    out = add_metrics([_e("hf:a/b")], {"hf:A/B": [Metric("x", "wer", 4.0, "s")]}, "open-asr-leaderboard")
    assert out[0].metric("x", "wer") == 4.0 and out[0].provenance == ("curated", "open-asr-leaderboard")


def test_openclip_zero_shot_on_same_weights(tmp_path: Path) -> None:
    (tmp_path / "SOURCE.md").write_text("open_clip at commit `89fb801f1e6087880e951fc8354b8a2077b79c6d`\n")
    (tmp_path / OPENCLIP_RESULTS).write_text(
        "name,pretrained,params (M),FLOPs (B),Average perf. on 38 datasets,ImageNet 1k\n"
        "ViT-B-32,openai,151.28,14.78,0.5,0.6332\nViT-B-32,laion2b_s34b_b79k,151.28,14.78,0.6,0.66\n"
    )
    m = openclip_metrics({OPENCLIP_RESULTS: tmp_path / OPENCLIP_RESULTS})
    assert set(m) == {"timm:vit_base_patch32_clip_224.openai", "hf:openai/clip-vit-base-patch32"}
    top = {x.dataset: x for x in m["hf:openai/clip-vit-base-patch32"]}
    assert top["imagenet-1k"].value == pytest.approx(63.32) and top["imagenet-1k"].name == "zero_shot_acc"
    assert top["imagenet-1k"].protocol == ZERO_SHOT
    assert top["openclip-zero-shot-mean"].value == pytest.approx(50.0)
