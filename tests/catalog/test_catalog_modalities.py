"""Entries that take several inputs (`CatalogEntry.modalities`): schema, filters, the CLI table, the ASR probe rule,
and the committed catalog's counts per modality that issue 15 asks for."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from advisor.catalog.api import list_entries
from advisor.catalog.schema import CatalogEntry
from advisor.catalog.sources_asr import probe_rule
from advisor.catalog.store import Catalog, Filters, load_catalog, published_metric, sort_entries
from advisor.cli.main import app
from advisor.errors import CatalogError


def _e(id: str, modality: str, modalities: tuple[str, ...] = (), probeable: bool = True) -> CatalogEntry:
    return CatalogEntry(
        id=id,
        source="hf",
        source_id=id[3:],
        family="f",
        architecture="a",
        modality=modality,
        task="text-encoder" if modality == "text" else "image-feature-extraction",
        probeable=probeable,
        probe_note="n",
        modalities=modalities,
    )


def test_modalities_roundtrip_and_are_omitted_when_single() -> None:
    clip = _e("hf:o/clip", "image", ("image", "text"))
    d = clip.to_dict()
    assert d["modalities"] == ["image", "text"] and CatalogEntry.from_dict(d) == clip
    plain = _e("hf:o/txt", "text")
    assert "modalities" not in plain.to_dict()  # one-modality entries keep their on-disk form
    assert CatalogEntry.from_dict(plain.to_dict()).modalities == ()


@pytest.mark.parametrize("bad", [("smell",), ("multimodal",)])
def test_modalities_must_be_input_modalities(bad: tuple[str, ...]) -> None:
    with pytest.raises(CatalogError, match="modalities"):
        _e("hf:o/x", "image", bad)


def test_modality_filter_takes_listed_inputs_probeable_only_for_primary() -> None:
    cat = Catalog(
        [
            _e("hf:o/clip", "image", ("image", "text")),
            _e("hf:o/txt", "text"),
            _e("hf:o/rerank", "text", probeable=False),
        ]
    )
    ids = lambda f: [e.id for e in cat.filter(f)]  # noqa: E731
    assert ids(Filters(modality="text")) == ["hf:o/clip", "hf:o/txt", "hf:o/rerank"]
    assert ids(Filters(modality="image")) == ["hf:o/clip"]
    assert ids(Filters(modality="text", probeable=True)) == ["hf:o/txt"]  # CLIP is probed as an image model
    assert ids(Filters(modality="text", probeable=False)) == ["hf:o/clip", "hf:o/rerank"]
    assert ids(Filters(modality="image", probeable=True)) == ["hf:o/clip"]
    assert ids(Filters(probeable=True)) == ["hf:o/clip", "hf:o/txt"]


def test_mteb_mean_of_another_modality_is_unknown_in_a_listing() -> None:
    # An image-text model's MTEB mean is over image tasks: under text it is unknown (not sorted, not bounded).
    clip = _e("hf:o/clip", "image", ("image", "text"))
    clip = CatalogEntry.from_dict(
        {
            **clip.to_dict(),
            "metrics": [{"dataset": "mteb-classification", "name": "mean", "value": 90.0, "source": "s"}],
        }
    )
    txt = CatalogEntry.from_dict(
        {
            **_e("hf:o/txt", "text").to_dict(),
            "metrics": [{"dataset": "mteb-classification", "name": "mean", "value": 60.0, "source": "s"}],
        }
    )
    assert published_metric(clip, "mteb") == 90.0 and published_metric(clip, "mteb", "image") == 90.0
    assert published_metric(clip, "mteb", "text") is None
    assert [e.id for e in sort_entries([clip, txt], "mteb", descending=True, modality="text")] == [
        "hf:o/txt",
        "hf:o/clip",
    ]
    assert [e.id for e in Catalog([clip, txt]).filter(Filters(modality="text", min_metric=("mteb", 50)))] == [
        "hf:o/txt"
    ]


@pytest.mark.parametrize(
    "name, probeable, word",
    [
        ("openai/whisper-large-v3", True, "encoder"),
        ("facebook/wav2vec2-large-960h", True, "encoder"),
        ("speechbrain/asr-wav2vec2-librispeech", False, "SpeechBrain"),
        ("efficient-speech/lite-whisper-large-v3-turbo", False, "trust_remote_code"),
        ("nvidia/canary-1b", False, "not known to load"),
    ],
)
def test_asr_probe_rule(name: str, probeable: bool, word: str) -> None:
    ok, note = probe_rule(name)
    assert ok is probeable and word in note


# ------------------------------------------------------------------------------- the committed catalog (issue 15)


def _has_mteb(e: CatalogEntry) -> bool:
    return any(m.source.startswith("embeddings-benchmark/results@") for m in e.metrics)


def test_committed_counts_per_modality() -> None:
    text = list_entries(modality="text")
    audio = list_entries(modality="audio")
    assert len(text) >= 750 and len(audio) >= 150
    assert sum(_has_mteb(e) for e in text) >= 300
    audio_fig = [e for e in audio if e.wer is not None or (e.modality == "audio" and _has_mteb(e))]
    assert len(audio_fig) >= 50
    # every listed entry takes that input, and the extra ones say so
    assert all(e.modality == "text" or "text" in e.modalities for e in text)
    assert all(e.modality == "audio" or "audio" in e.modalities for e in audio)


def test_committed_catalog_rules() -> None:
    cat = load_catalog()
    ids = {e.id for e in cat}
    assert not [i for i in ids if i.startswith(("hf:mteb/baseline", "hf:baseline/"))]
    rerank = [e for e in cat if "cross-encoder" in e.tags]
    assert len(rerank) >= 40 and not any(e.probeable for e in rerank)
    assert not cat.get("hf:speechbrain/asr-wav2vec2-librispeech").probeable
    assert cat.get("hf:openai/whisper-large-v3").probeable


def test_text_and_audio_candidates_are_loadable_entries() -> None:
    from advisor.recommend.candidates import Constraints, select_candidates

    cat = load_catalog()
    for modality in ("text", "audio"):
        for lic in ("any", "commercial"):
            cands, _ = select_candidates(modality, Constraints(license=lic), cat)
            entries = [c.entry for c in cands if c.entry is not None]
            assert entries and all(e.modality == modality and e.probeable for e in entries)
            assert not [
                e.id for e in entries if set(e.tags) & {"cross-encoder", "late-interaction", "sparse"}
            ]


runner = CliRunner()


def test_text_listing_of_an_image_text_model_is_a_text_row() -> None:
    clip = next(
        e
        for e in load_catalog()
        if e.modality == "image" and "text" in e.modalities and e.probeable and e.mteb_classification
    )
    args = ["catalog", "list", "--modality", "text", "--family", clip.family, "--source", "hf"]
    r = runner.invoke(app, args, terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "MTEB cls %" in r.stdout and "top-1" not in r.stdout  # columns of the listing's modality
    row = next(line for line in r.stdout.splitlines() if clip.id in line)
    assert "✓" not in row  # not probed as text
    assert f"{clip.mteb_classification:.2f}" not in row  # its MTEB mean is an image one, not a text figure
    img = runner.invoke(app, ["catalog", "list", "--modality", "image", *args[4:]], terminal_width=200)
    row = next(line for line in img.stdout.splitlines() if clip.id in line)
    assert "✓" in row  # an image candidate
