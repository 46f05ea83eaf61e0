"""The committed catalog's MTEB / Open ASR / OpenCLIP records equal a rebuild from ../shared/data (skipped when
absent), and carry the published figures the catalog promises."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from advisor.catalog.build import locate_sources
from advisor.catalog.sources_merge import merge_published_sources
from advisor.catalog.sources_mteb import MTEB_METAS
from advisor.catalog.store import load_catalog

_BASE = {"timm", "torchvision", "curated"}


@pytest.fixture(scope="module")
def tables() -> dict[str, Path]:
    data = Path(
        os.environ.get("ADVISOR_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
    )
    if not (data.is_dir() and any(data.rglob(MTEB_METAS))):
        pytest.skip(f"shared source tables (mteb/, open-asr-leaderboard/, openclip/) not found at {data}")
    return locate_sources(data)


def test_rebuilt_published_source_entries_equal_committed(tables: dict[str, Path]) -> None:
    cat = load_catalog()
    rebuilt = merge_published_sources([], tables)
    standalone = [e for e in rebuilt if not _BASE & set(cat.get(e.id).provenance)]
    assert len(standalone) > 700
    for e in standalone[::7]:  # a sample spread over the whole table
        assert cat.get(e.id) == e, e.id


def test_merged_ids_are_one_entry_listing_all_sources() -> None:
    cat = load_catalog()
    e = cat.get("hf:sentence-transformers/all-MiniLM-L6-v2")
    assert e.provenance[0] == "curated" and any(p.startswith("mteb") for p in e.provenance)
    assert e.n_params_source.startswith("counted")  # the counted figure wins over MTEB's published one
    assert e.mteb_classification is not None
    ids = [x.id.lower() for x in cat]
    assert len(ids) == len(set(ids))


def test_published_metric_counts() -> None:
    cat = load_catalog()
    # every figure names the upstream commit its SOURCE.md gives
    assert not [e.id for e in cat for m in e.metrics if "unknown-commit" in m.source]
    text = [e for e in cat if e.modality == "text"]
    audio = [e for e in cat if e.modality == "audio"]
    with_mteb = [
        e for e in text if any(m.source.startswith("embeddings-benchmark/results@") for m in e.metrics)
    ]
    assert len(with_mteb) >= 300
    audio_fig = [
        e
        for e in audio
        if e.wer is not None or any(m.source.startswith("embeddings-benchmark") for m in e.metrics)
    ]
    assert len(audio_fig) >= 50
    w = cat.get("hf:openai/whisper-large-v3")
    assert w.wer is not None and any(m.name == "rtfx" and "A100" in (m.protocol or "") for m in w.metrics)
    clip = cat.get("hf:openai/clip-vit-base-patch32")
    assert any(m.name == "zero_shot_acc" and m.protocol.startswith("zero-shot") for m in clip.metrics)


def _fake_hf_cache(root: Path, repos: list[str]) -> None:
    for repo in repos:
        d = root / ("models--" + repo.replace("/", "--"))
        (d / "snapshots" / "abc").mkdir(parents=True)
        (d / "snapshots" / "abc" / "config.json").write_text("{}")
        (d / "refs").mkdir()
        (d / "refs" / "main").write_text("abc")


def test_offline_text_candidates_are_only_local_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The catalog grew by hundreds of hf: text entries; offline selection still takes only weights on disk.
    from huggingface_hub import constants

    from advisor.recommend.candidates import Constraints, select_candidates

    local = ["sentence-transformers/all-MiniLM-L6-v2", "BAAI/bge-small-en-v1.5"]
    _fake_hf_cache(tmp_path, local)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    cands, _ = select_candidates("text", Constraints(offline=True), load_catalog())
    hf = sorted(c.model_id for c in cands if c.model_id.startswith("hf:"))
    assert hf == sorted(f"hf:{r}" for r in local)
    assert all(c.available for c in cands)
