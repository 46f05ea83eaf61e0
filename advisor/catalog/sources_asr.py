"""Catalog entries and WER/RTFx figures from the Open ASR Leaderboard tables (en short-form, long-form, multilingual)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from advisor.catalog.schema import CatalogEntry, Metric
from advisor.catalog.sources_mteb import hf_entry

ASR_SHORT = "en_shortform.csv"
ASR_LONG = "en_longform.csv"
ASR_MULTI = "multilingual.csv"
RTFX_PROTOCOL = "RTFx (inverse real-time factor) on one A100-SXM4-80GB, as the leaderboard ran it"
WER_PROTOCOL = "word error rate (percent), leaderboard normalisation"
# Model families whose encoders advisor's hf: audio loader takes (curated entries of the same families probe) ...
_PROBEABLE = re.compile(r"whisper|wav2vec2|hubert|wavlm|data2vec-audio", re.I)
# ... except repos of those families in another format: SpeechBrain checkpoints (hyperparams.yaml, no transformers
# config) and LiteASR's lite-whisper (its own modelling code, which needs trust_remote_code; advisor never sets it).
_NOT_TRANSFORMERS = {
    re.compile(r"^speechbrain/", re.I): "a SpeechBrain checkpoint, not a transformers model",
    re.compile(
        r"/lite-whisper", re.I
    ): "its modelling code is in the repo (trust_remote_code), never run by default",
}


def probe_rule(name: str) -> tuple[bool, str]:
    """Whether advisor's hf: audio loader takes the leaderboard model `name`, and the `probe_note` saying so."""
    for pattern, why in _NOT_TRANSFORMERS.items():
        if pattern.search(name):
            return (
                False,
                f"speech recognizer on the Open ASR Leaderboard; advisor's hf: loader does not load it: {why}",
            )
    if _PROBEABLE.search(name):
        return (
            True,
            "Hugging Face speech model; advisor's hf: audio loader takes its encoder (mean over frames)",
        )
    return (
        False,
        "speech recognizer on the Open ASR Leaderboard; advisor's hf: audio loader is not known to load it",
    )


def _commit(path: Path) -> str:
    src = path.parent / "SOURCE.md"
    m = re.search(r"at commit `([0-9a-f]{7,40})`", src.read_text(encoding="utf-8")) if src.is_file() else None
    return m.group(1)[:7] if m else "unknown-commit"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _num(s: str | None) -> float | None:
    """A leaderboard number; -1 and empty mean unknown."""
    try:
        v = float(s) if s not in (None, "") else None
    except ValueError:
        return None
    return None if v is None or v < 0 else v


def _metrics(path: Path, table: str, commit: str, model_col: str, avg_col: str) -> dict[str, list[Metric]]:
    src = f"huggingface/open_asr_leaderboard@{commit} scripts/data/{path.name}"
    out: dict[str, list[Metric]] = {}
    for r in _rows(path):
        ms = []
        for col, value in r.items():
            v = _num(value)
            if v is None or col in (model_col, "Model size (B)", "License"):
                continue
            if col == "RTFx":
                ms.append(Metric(table, "rtfx", v, src, split="test", protocol=RTFX_PROTOCOL))
            elif col == avg_col:
                ms.append(Metric(table, "wer", v, src, split="test", protocol=WER_PROTOCOL))
            elif not col.startswith("Avg"):
                ds = col.removesuffix(" WER").lower().replace(" ", "-")
                ms.append(Metric(f"{ds} ({table})", "wer", v, src, split="test", protocol=WER_PROTOCOL))
        out[r[model_col]] = ms
    return out


def asr_metrics(tables: dict[str, Path]) -> dict[str, list[Metric]]:
    """WER and RTFx per Hugging Face id from every leaderboard table present (short-form first)."""
    out: dict[str, list[Metric]] = {}
    specs = (
        (ASR_SHORT, "open-asr-en-shortform", "model", "Avg. WER"),
        (ASR_LONG, "open-asr-en-longform", "model_id", "Average"),
        (ASR_MULTI, "open-asr-multilingual", "model", "Avg"),
    )
    for name, table, model_col, avg_col in specs:
        if name in tables:
            for model, ms in _metrics(tables[name], table, _commit(tables[name]), model_col, avg_col).items():
                out.setdefault(model, []).extend(ms)
    return out


def asr_entries(tables: dict[str, Path]) -> list[CatalogEntry]:
    """One speech-recognition entry per open model of the short-form table, with all its leaderboard figures.

    Long-form and multilingual rows have no license column: their figures join an entry only through the merge
    (`sources_merge.merge_entries`) when the same id is already in the catalog.
    """
    if ASR_SHORT not in tables:
        return []
    metrics = asr_metrics(tables)
    commit = _commit(tables[ASR_SHORT])
    out = []
    for r in sorted(_rows(tables[ASR_SHORT]), key=lambda r: r["model"]):
        name = r["model"]
        if r.get("License") != "Open" or "/" not in name:
            continue
        size = _num(r.get("Model size (B)"))
        probeable, note = probe_rule(name)
        out.append(
            hf_entry(
                name,
                architecture=name.split("/")[-1],
                modality="audio",
                task="speech-recognition",
                n_params=int(round(size * 1e9)) if size else None,
                n_params_source=(
                    f"published: huggingface/open_asr_leaderboard@{commit} {ASR_SHORT} "
                    "'Model size (B)' (rounded)"
                )
                if size
                else None,
                metrics=tuple(
                    sorted(metrics.get(name, []), key=lambda m: (m.dataset != "open-asr-en-shortform",))
                ),
                probeable=probeable,
                probe_note=note,
                provenance=("open-asr-leaderboard",),
            )
        )
    return out
