"""MTEB ModelMeta + results -> catalog entries: the mapping rules, on tiny tables made in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.catalog.sources_mteb import (
    MTEB_METAS,
    MTEB_RESULTS,
    PROBE_PROTOCOL,
    family_of_hf,
    mteb_entries,
)

SOURCE_MD = (
    "- From the PyPI package `mteb==2.26.24` (Apache-2.0)\n"
    "- From the public repository github.com/embeddings-benchmark/results at commit "
    "`f4cc6c8b365a3c779dbc708d6affe0b0355b2ddf`\n"
)


def _meta(name: str, **kw: object) -> dict[str, object]:
    d: dict[str, object] = {
        "name": name,
        "revision": "r1",
        "release_date": "2024-03-01",
        "languages": ["eng-Latn"],
        "n_parameters": 33_000_000,
        "max_tokens": 512.0,
        "embed_dim": 384,
        "license": "mit",
        "open_weights": True,
        "framework": ["Sentence Transformers", "PyTorch"],
        "similarity_fn_name": "cosine",
        "use_instructions": False,
        "modalities": ["text"],
        "model_type": ["dense"],
    }
    d.update(kw)
    return d


def _row(
    model: str, task: str, score: float, typ: str = "Classification", rev: str = "r1", ver: str = "1.0.0"
):
    return {
        "model": model,
        "revision": rev,
        "task": task,
        "type": typ,
        "split": "test",
        "main_metric": "accuracy",
        "main_score": score,
        "n_subsets": 1,
        "mteb_version": ver,
        "source": f"github:embeddings-benchmark/results@f4cc6c8b:results/{model.replace('/', '__')}/{rev}/{task}.json",
    }


def _write(tmp_path: Path, metas: list[dict], rows: list[dict]) -> dict[str, Path]:
    d = tmp_path / "mteb"
    d.mkdir()
    (d / "SOURCE.md").write_text(SOURCE_MD)
    (d / MTEB_METAS).write_text("".join(json.dumps(m) + "\n" for m in metas))
    (d / MTEB_RESULTS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {MTEB_METAS: d / MTEB_METAS, MTEB_RESULTS: d / MTEB_RESULTS}


def test_open_dense_only_sorted_and_labelled(tmp_path: Path) -> None:
    metas = [
        _meta("org/zeta"),
        _meta("org/api", open_weights=False),
        _meta("org/rerank", model_type=["cross-encoder"]),
        _meta("org/colbert", model_type=["late-interaction"]),
        _meta("org/splade", model_type=["sparse"]),
        _meta("org/alpha", modalities=["audio"], framework=["PyTorch", "Transformers"], max_tokens=None),
        _meta("org/clipish", modalities=["image", "text"], framework=["PyTorch"]),
    ]
    entries = mteb_entries(_write(tmp_path, metas, []))
    assert [e.id for e in entries] == ["hf:org/alpha", "hf:org/clipish", "hf:org/zeta"]
    zeta = entries[2]
    assert (zeta.modality, zeta.task, zeta.n_params) == ("text", "text-encoder", 33_000_000)
    assert zeta.n_params_source.startswith("published: mteb 2.26.24")
    assert "counted" not in zeta.n_params_source
    assert (zeta.revision, zeta.release_date, zeta.year, zeta.languages) == (
        "r1",
        "2024-03-01",
        2024,
        ("eng-Latn",),
    )
    assert (zeta.max_seq_len, zeta.feature_dim, zeta.license, zeta.license_class) == (
        512,
        384,
        "MIT",
        "permissive",
    )
    assert zeta.loader["similarity_fn"] == "cosine" and zeta.loader["framework"] == [
        "Sentence Transformers",
        "PyTorch",
    ]
    assert zeta.probeable and zeta.provenance == ("mteb 2.26.24 ModelMeta",)
    assert (entries[0].modality, entries[0].task) == ("audio", "audio-feature-extraction")
    assert (
        entries[1].modality == "image" and not entries[1].probeable and "own wrapper" in entries[1].probe_note
    )


def test_results_percent_split_protocol_and_mean(tmp_path: Path) -> None:
    rows = [
        _row("org/m", "TaskA", 0.5),
        _row("org/m", "TaskB", 0.75),
        _row("org/m", "TaskB", 0.1, rev="old"),  # another revision: the meta's revision wins
        _row("org/m", "TaskC", 0.4, typ="Clustering"),  # not a probe protocol: left out of the entry
        _row("org/m", "TaskA", 0.9, ver="0.9.0"),  # an older mteb_version of the same row: ignored
    ]
    (e,) = mteb_entries(_write(tmp_path, [_meta("org/m")], rows))
    by = {m.dataset: m for m in e.metrics}
    assert set(by) == {"mteb-classification", "TaskA", "TaskB"}
    assert by["TaskA"].value == pytest.approx(50.0) and by["TaskB"].value == pytest.approx(75.0)
    assert by["TaskA"].split == "test" and by["TaskA"].protocol == PROBE_PROTOCOL
    assert by["TaskA"].source == "embeddings-benchmark/results@f4cc6c8 results/org__m/r1/TaskA.json"
    assert e.mteb_classification == pytest.approx(62.5)
    assert "mean of 2 MTEB Classification tasks" in by["mteb-classification"].source


def test_rows_of_another_revision_when_none_match(tmp_path: Path) -> None:
    (e,) = mteb_entries(
        _write(tmp_path, [_meta("org/m", revision="new")], [_row("org/m", "T", 0.25, rev="x")])
    )
    assert e.metric("T", "accuracy") == pytest.approx(25.0)


def test_family_of_hf() -> None:
    assert family_of_hf("sentence-transformers/all-MiniLM-L6-v2") == "minilm"
    assert family_of_hf("BAAI/bge-small-en-v1.5") == "bge"
    assert family_of_hf("intfloat/multilingual-e5-small") == "e5"
