"""Catalog entries from MTEB's ModelMeta records and its published classification-like results (no torch)."""

from __future__ import annotations

import json
import logging
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from advisor.catalog.licenses import normalize_license
from advisor.catalog.schema import INPUT_MODALITIES, CatalogEntry, Metric

log = logging.getLogger(__name__)

MTEB_METAS = "model-metas.jsonl"
MTEB_RESULTS = "results-classification-like.jsonl"
MTEB_TASKS = "tasks.json"
# ModelMeta.model_type values whose weights are not a single-vector encoder the advisor can probe: listed (the
# catalog is complete, with provenance) but `probeable: false`, with the reason as `probe_note`.
NOT_SINGLE_VECTOR = {
    "cross-encoder": "a cross-encoder: it scores (query, document) pairs and embeds no single input",
    "late-interaction": "a late-interaction (multi-vector, ColBERT-style) model: one vector per token",
    "sparse": "a sparse lexical encoder: vocabulary-sized term weights, not dense features",
}
# MTEB's reference baselines (BM25, random encoders, human scores) are not pretrained weights: not catalog entries.
BASELINE = re.compile(r"^(mteb/baseline-|baseline/)", re.I)
PROBE_PROTOCOL = "few-shot logistic-regression probe"
# Protocol of each MTEB task type (mteb/abstasks/*): what the published number measures.
TYPE_PROTOCOL = {
    "Classification": PROBE_PROTOCOL,
    "AudioClassification": PROBE_PROTOCOL,
    "ImageClassification": PROBE_PROTOCOL,
    "MultilabelClassification": "few-shot multilabel probe (k-NN on frozen embeddings)",
    "AudioMultilabelClassification": "few-shot multilabel probe (k-NN on frozen embeddings)",
    "Clustering": "k-means clustering of frozen embeddings (v-measure)",
    "AudioClustering": "k-means clustering of frozen embeddings (v-measure)",
    "ZeroShotClassification": "zero-shot (text prompts)",
    "AudioZeroshotClassification": "zero-shot (text prompts)",
}
# The task type whose mean is the entry's `mteb-classification` prior, by the entry's modality.
MEAN_TYPE = {"text": "Classification", "audio": "AudioClassification", "image": "ImageClassification"}
_FAMILY_SKIP = {"all", "multi", "paraphrase", "sentence", "multilingual", "static"}


def _version(s: str | None) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", s or ""))


def _source_text(path: Path) -> str:
    src = path.parent / "SOURCE.md"
    return src.read_text(encoding="utf-8") if src.is_file() else ""


def mteb_versions(tables: dict[str, Path]) -> tuple[str, str]:
    """(mteb package version of the ModelMeta records, results repository commit) from the SOURCE.md beside them."""
    text = _source_text(tables[MTEB_METAS])
    ver = re.search(r"mteb==([0-9][0-9.]*[0-9])", text)
    commit = re.search(r"embeddings-benchmark/results`? at commit `([0-9a-f]{7,40})`", text)
    return (ver.group(1) if ver else "unknown"), (commit.group(1)[:7] if commit else "unknown-commit")


def family_of_hf(name: str) -> str:
    """A family for a Hugging Face id: the first word of the repo name that is not a generic prefix."""
    base = name.split("/")[-1].lower()
    for tok in re.split(r"[-_.\s]+", base):
        word = re.match(r"[a-z][a-z0-9]*", tok)
        if word and word.group(0) not in _FAMILY_SKIP and len(word.group(0)) > 1:
            return word.group(0)
    return base


def hf_entry(name: str, **fields: Any) -> CatalogEntry:
    """The catalog entry of the Hugging Face repo `name` (id, source, source id and family filled in)."""
    return CatalogEntry(id=f"hf:{name}", source="hf", source_id=name, family=family_of_hf(name), **fields)


def _modality_task(modalities: list[str]) -> tuple[str, str]:
    """The entry's modality and task from ModelMeta.modalities (stated rule, see catalog/README.md)."""
    m = set(modalities)
    if m == {"text"}:
        return "text", "text-encoder"
    if "audio" in m and m <= {"audio", "text"}:
        return "audio", "audio-feature-extraction"
    if "image" in m and m <= {"image", "text"}:
        return "image", "image-feature-extraction"
    if m == {"video"}:
        return "video", "video-classification"
    return "multimodal", "text-encoder" if "text" in m else "image-feature-extraction"


def _probeable(
    modality: str, frameworks: list[str], types: list[str], instructions: bool = False
) -> tuple[bool, str]:
    """Whether advisor's hf: loaders take the weights, and the `probe_note` that says how (or why not)."""
    if "dense" not in types and "hybrid" not in types:
        why = next((NOT_SINGLE_VECTOR[t] for t in types if t in NOT_SINGLE_VECTOR), None)
        if why:
            return (
                False,
                f"{why}; advisor's probe needs one dense vector per input (listed for its MTEB record)",
            )
    hf = any(f in ("Transformers", "Sentence Transformers") for f in frameworks)
    if modality in ("text", "audio") and hf:
        note = (
            "Hugging Face weights (needs network once, then cached); advisor's hf: loader follows the repo's "
            "sentence-transformers config (pooling, normalisation, max length, and its 'Classification' prompt, "
            "else its default prompt, as MTEB picks them for classification; else the mean over the attention "
            "mask)"
        )
        if instructions:
            note += (
                "; MTEB prompted this model with a per-task instruction from its own loader code, which advisor "
                "does not apply: pass one with `?prompt=` for the published protocol"
            )
        return True, note
    if modality == "image" and hf:
        return True, "Hugging Face weights; advisor's hf: image loader (pooler output or mean over tokens)"
    return False, f"MTEB loads it through its own wrapper (framework: {', '.join(frameworks) or 'unknown'})"


def read_metas(tables: dict[str, Path]) -> list[dict[str, Any]]:
    """The ModelMeta records kept, sorted by name: open weights under a hub id (`org/name`), not MTEB's baselines.

    Closed (API) models are left out: there are no weights to list. Cross-encoder, late-interaction and sparse
    models are kept; `mteb_entries` marks them not probeable.
    """
    rows = []
    with open(tables[MTEB_METAS], encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
    kept = [
        r
        for r in rows
        if r.get("open_weights") is True
        and re.fullmatch(r"[^/\s]+/[^/\s]+", r.get("name") or "")
        and not BASELINE.match(r["name"])
    ]
    return sorted(kept, key=lambda r: r["name"])


def _modalities(modalities: list[str], modality: str) -> tuple[str, ...]:
    """The input modalities of a record, in `INPUT_MODALITIES` order; empty when it is `modality` alone."""
    given = [m for m in INPUT_MODALITIES if m in modalities]
    return () if given == [modality] else tuple(given)


def _note_other_inputs(note: str, modality: str, modalities: tuple[str, ...]) -> str:
    others = [m for m in modalities if m != modality]
    if modality == "multimodal" or not others:
        return note
    return f"{note}; it takes {' and '.join(others)} input too, which advisor does not probe: a candidate for {modality} data only"


def read_results(tables: dict[str, Path], commit: str) -> dict[str, list[tuple[str, Metric, str]]]:
    """Per model name: (task type, Metric, revision) for one row per task.

    Rule per (model, task): the row with the highest mteb_version, then the lexically greatest revision; the
    metas' revision is preferred by `mteb_metrics` when a model has rows for it.
    """
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    with open(tables[MTEB_RESULTS], encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            r = json.loads(line)
            key = (r["model"], r["revision"] or "", r["task"])
            old = best.get(key)
            if old is None or _version(r["mteb_version"]) > _version(old["mteb_version"]):
                best[key] = r
    out: dict[str, list[tuple[str, Metric, str]]] = defaultdict(list)
    for (model, rev, _task), r in sorted(best.items()):
        path = r["source"].rsplit(":", 1)[-1]
        out[model].append(
            (
                r["type"],
                Metric(
                    dataset=r["task"],
                    name=r["main_metric"],
                    value=round(float(r["main_score"]) * 100, 4),
                    source=f"embeddings-benchmark/results@{commit} {path}",
                    split=r["split"],
                    protocol=TYPE_PROTOCOL.get(r["type"], r["type"]),
                ),
                rev,
            )
        )
    return out


def mteb_metrics(
    rows: list[tuple[str, Metric, str]], revision: str | None, modality: str, commit: str
) -> list[Metric]:
    """The metrics of one model: its rows at `revision` when there are any, else at the latest revision per task
    (the greatest revision string); plus the `mteb-classification` mean for the modality's classification type."""
    at_rev = [x for x in rows if x[2] == revision]
    chosen: dict[str, tuple[str, Metric]] = {}
    for typ, m, _rev in at_rev or sorted(rows, key=lambda x: x[2]):
        chosen[m.dataset] = (typ, m)
    # Per-task figures kept in the entry: the probe-protocol classification types (clustering and zero-shot rows
    # are read but left out, to keep the catalog small enough to load fast).
    metrics = [m for _, (typ, m) in sorted(chosen.items()) if TYPE_PROTOCOL.get(typ) == PROBE_PROTOCOL]
    mean_type = MEAN_TYPE.get(modality)
    vals = [m.value for typ, m in chosen.values() if typ == mean_type]
    if vals:
        metrics.insert(
            0,
            Metric(
                dataset="mteb-classification",
                name="mean",
                value=round(sum(vals) / len(vals), 2),
                source=f"embeddings-benchmark/results@{commit}: mean of {len(vals)} MTEB {mean_type} tasks",
                split="test",
                protocol=PROBE_PROTOCOL,
            ),
        )
    return metrics


def mteb_entries(tables: dict[str, Path]) -> list[CatalogEntry]:
    """One entry per kept ModelMeta record (`read_metas`), with its published results as metrics."""
    version, commit = mteb_versions(tables)
    results = read_results(tables, commit) if MTEB_RESULTS in tables else {}
    out = []
    for r in read_metas(tables):
        name = r["name"]
        given = list(r.get("modalities") or ["text"])
        modality, task = _modality_task(given)
        modalities = _modalities(given, modality)
        frameworks = list(r.get("framework") or [])
        types = list(r.get("model_type") or ["dense"])
        probeable, note = _probeable(modality, frameworks, types, bool(r.get("use_instructions")))
        spdx, lclass = normalize_license(r.get("license"))
        n = r.get("n_parameters")
        max_tok = r.get("max_tokens")
        loader = {
            k: v
            for k, v in {
                "framework": frameworks or None,
                "similarity_fn": r.get("similarity_fn_name"),
                "use_instructions": r.get("use_instructions"),
                "model_type": r.get("model_type"),
                "extra_requirements": r.get("extra_requirements_groups"),
                "pooling_prompts": "not in the source table (MTEB keeps them in its loader code); advisor's hf: "
                "loader reads pooling, normalisation and the 'Classification' or default prompt from the repo's "
                "sentence-transformers config at load time",
            }.items()
            if v is not None
        }
        date = r.get("release_date")
        out.append(
            hf_entry(
                name,
                architecture=(r.get("adapted_from") or name).split("/")[-1],
                modality=modality,
                task=task,
                n_params=int(n) if n else None,
                n_params_source=f"published: mteb {version} ModelMeta.n_parameters (may be rounded)"
                if n
                else None,
                max_seq_len=int(max_tok)
                if max_tok and math.isfinite(max_tok) and modality == "text"
                else None,
                feature_dim=int(r["embed_dim"]) if isinstance(r.get("embed_dim"), int) else None,
                license=spdx,
                license_raw=r.get("license"),
                license_class=lclass,
                metrics=tuple(mteb_metrics(results.get(name, []), r.get("revision"), modality, commit)),
                year=int(date[:4]) if date and re.match(r"\d{4}", date) else None,
                probeable=probeable,
                probe_note=_note_other_inputs(note, modality, modalities),
                tags=tuple(t for t in types if t != "dense"),
                revision=r.get("revision"),
                release_date=date,
                languages=tuple(r.get("languages") or ()),
                modalities=modalities,
                loader=loader,
                provenance=(f"mteb {version} ModelMeta",),
            )
        )
    log.info("mteb: %d entries from %s", len(out), tables[MTEB_METAS])
    return out
