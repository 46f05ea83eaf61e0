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


def test_open_weights_sorted_and_labelled(tmp_path: Path) -> None:
    metas = [
        _meta("org/zeta"),
        _meta("org/api", open_weights=False),  # closed (API): no weights to list
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


def test_not_single_vector_models_are_listed_not_probeable(tmp_path: Path) -> None:
    # Cross-encoder, late-interaction and sparse records are catalog entries (complete, with provenance) that
    # advisor does not probe; a record with a dense output besides its sparse one stays probeable.
    metas = [
        _meta("org/rerank", model_type=["cross-encoder"]),
        _meta("org/colbert", model_type=["late-interaction"]),
        _meta("org/splade", model_type=["sparse"]),
        _meta("org/m3", model_type=["dense", "sparse"]),
        _meta("org/hybrid", model_type=["hybrid"]),
    ]
    by = {e.id: e for e in mteb_entries(_write(tmp_path, metas, [_row("org/colbert", "T", 0.5)]))}
    assert set(by) == {f"hf:org/{n}" for n in ("rerank", "colbert", "splade", "m3", "hybrid")}
    for name, word in (("rerank", "cross-encoder"), ("colbert", "late-interaction"), ("splade", "sparse")):
        e = by[f"hf:org/{name}"]
        assert not e.probeable and word in e.probe_note and "one dense vector" in e.probe_note, name
        assert e.tags == (word,) and e.loader["model_type"] == [word]
        assert e.n_params_source.startswith("published:")
    assert by["hf:org/colbert"].mteb_classification == pytest.approx(50.0)  # its figures are kept
    assert by["hf:org/m3"].probeable and by["hf:org/m3"].tags == ("sparse",)
    assert by["hf:org/hybrid"].probeable and by["hf:org/hybrid"].tags == ("hybrid",)


def test_mteb_baselines_are_not_entries(tmp_path: Path) -> None:
    metas = [
        _meta("mteb/baseline-bm25s", model_type=["sparse"]),
        _meta("mteb/baseline-random-encoder", modalities=["text", "image", "audio", "video"]),
        _meta("baseline/Human"),
        _meta("mteb/real-model"),
        _meta("no-org-name"),
    ]
    assert [e.id for e in mteb_entries(_write(tmp_path, metas, []))] == ["hf:mteb/real-model"]


def test_all_input_modalities_recorded_primary_unchanged(tmp_path: Path) -> None:
    metas = [
        _meta("org/clip", modalities=["text", "image"], framework=["PyTorch", "Transformers"]),
        _meta("org/clap", modalities=["text", "audio"], framework=["PyTorch", "Transformers"]),
        _meta("org/omni", modalities=["video", "audio", "text", "image"]),
        _meta("org/txt"),
    ]
    by = {e.id: e for e in mteb_entries(_write(tmp_path, metas, []))}
    clip, clap, omni, txt = (by[f"hf:org/{n}"] for n in ("clip", "clap", "omni", "txt"))
    assert (clip.modality, clip.modalities) == ("image", ("image", "text"))  # in INPUT_MODALITIES order
    assert (clap.modality, clap.modalities) == ("audio", ("text", "audio"))
    assert (omni.modality, omni.modalities) == ("multimodal", ("image", "text", "audio", "video"))
    assert (txt.modality, txt.modalities) == ("text", ())  # one modality: nothing extra recorded
    assert (
        clip.probeable and "takes text input too" in clip.probe_note and "image data only" in clip.probe_note
    )
    assert "takes" not in txt.probe_note
    assert clip.takes("text") and clip.probeable_for("image") and not clip.probeable_for("text")


def test_the_probe_note_says_which_prompt_is_used_and_that_task_instructions_are_not(tmp_path: Path) -> None:
    metas = [_meta("org/plain"), _meta("org/instruct", use_instructions=True)]
    by_id = {e.id: e for e in mteb_entries(_write(tmp_path, metas, []))}
    plain, instruct = by_id["hf:org/plain"], by_id["hf:org/instruct"]
    assert plain.probeable and instruct.probeable
    assert "'Classification' prompt" in (plain.probe_note or "")
    assert "per-task instruction" not in (plain.probe_note or "")
    assert "per-task instruction" in (instruct.probe_note or "") and "?prompt=" in (instruct.probe_note or "")
