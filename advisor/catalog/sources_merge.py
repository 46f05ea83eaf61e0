"""Merging entries of the same weights from several sources into one catalog entry (rule in catalog/README.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from advisor.catalog.schema import CatalogEntry, Metric

_BASE_LABEL = {
    "timm": "timm",
    "torchvision": "torchvision",
    "hf": "curated",
    "pkg": "curated",
    "local": "local",
}


def _empty(v: object) -> bool:
    return v is None or v == () or v == {}


def _metric_key(m: Metric) -> tuple[str, str, str | None]:
    return (m.dataset, m.name, m.split)


def merge_pair(first: CatalogEntry, later: CatalogEntry) -> CatalogEntry:
    """One entry from two records of the same weights: every field of `first` that is known wins; `later` fills
    the unknown ones; metrics are the union (the first record's figure wins for the same dataset, metric and
    split); tags and provenance are the union in order."""
    known = {m.name for m in dataclasses.fields(CatalogEntry)}
    changes: dict[str, object] = {}
    for f in known - {"id", "metrics", "tags", "provenance", "probeable", "probe_note", "license_class"}:
        if _empty(getattr(first, f)) and not _empty(getattr(later, f)):
            changes[f] = getattr(later, f)
    if first.license is None and later.license is not None:
        changes["license_class"] = later.license_class
    have = {_metric_key(m) for m in first.metrics}
    changes["metrics"] = first.metrics + tuple(m for m in later.metrics if _metric_key(m) not in have)
    changes["tags"] = tuple(dict.fromkeys(first.tags + later.tags))
    changes["provenance"] = tuple(dict.fromkeys(own_provenance(first) + later.provenance))
    return dataclasses.replace(first, **changes)  # type: ignore[arg-type]


def own_provenance(e: CatalogEntry) -> tuple[str, ...]:
    """`e.provenance`, or its own source's label (timm, torchvision, curated) when it has none recorded."""
    return e.provenance or (_BASE_LABEL.get(e.source, e.source),)


def merge_entries(base: Iterable[CatalogEntry], *later: Iterable[CatalogEntry]) -> list[CatalogEntry]:
    """`base` in order, each `later` group merged in: an entry whose id (case-insensitive) is already present is
    merged into it (`merge_pair`, earlier sources first); the others are appended in their order."""
    out: list[CatalogEntry] = list(
        base
    )  # unmerged base entries keep an empty provenance: their `source` says it
    index = {e.id.lower(): i for i, e in enumerate(out)}
    for group in later:
        for e in group:
            i = index.get(e.id.lower())
            if i is None:
                index[e.id.lower()] = len(out)
                out.append(e)
            else:
                out[i] = merge_pair(out[i], e)
    return out


def add_metrics(
    entries: list[CatalogEntry], metrics: dict[str, list[Metric]], label: str
) -> list[CatalogEntry]:
    """Entries with the figures of `metrics` (by id, case-insensitive) appended and `label` added to provenance."""
    by_id = {k.lower(): v for k, v in metrics.items()}
    out = []
    for e in entries:
        ms = by_id.get(e.id.lower())
        if ms:
            have = {_metric_key(m) for m in e.metrics}
            e = dataclasses.replace(
                e,
                metrics=e.metrics + tuple(m for m in ms if _metric_key(m) not in have),
                provenance=tuple(dict.fromkeys((*own_provenance(e), label))),
            )
        out.append(e)
    return out


def merge_published_sources(entries: list[CatalogEntry], tables: dict[str, Path]) -> list[CatalogEntry]:
    """The catalog with MTEB, Open ASR Leaderboard and OpenCLIP merged in, for the tables present in `tables`.

    Order (the conflict rule): timm / torchvision / curated records first, then MTEB ModelMeta entries, then Open
    ASR Leaderboard entries; OpenCLIP only adds zero-shot figures to entries of the same weights.
    """
    from advisor.catalog.sources_asr import asr_entries, asr_metrics
    from advisor.catalog.sources_mteb import MTEB_METAS, mteb_entries
    from advisor.catalog.sources_openclip import openclip_metrics

    mteb = mteb_entries(tables) if MTEB_METAS in tables else []
    out = merge_entries(entries, mteb, asr_entries(tables))
    out = add_metrics(out, asr_metrics(tables), "open-asr-leaderboard")
    return inherit_same_weights(add_metrics(out, openclip_metrics(tables), "openclip"))


def inherit_same_weights(entries: list[CatalogEntry]) -> list[CatalogEntry]:
    """Entries whose ``same_weights_as`` names another entry get that entry's published figures they lack, each
    with its source saying it was published for the other id (the same weights in another form)."""
    import dataclasses

    by_id = {e.id: e for e in entries}
    out = []
    for e in entries:
        twin = by_id.get(e.same_weights_as) if e.same_weights_as else None
        if twin is not None:
            have = {(m.dataset, m.name) for m in e.metrics}
            extra = tuple(
                dataclasses.replace(m, source=f"{m.source} (published for {twin.id}: the same weights)")
                for m in twin.metrics
                if (m.dataset, m.name) not in have
            )
            e = dataclasses.replace(e, metrics=tuple(e.metrics) + extra)
        out.append(e)
    return out
