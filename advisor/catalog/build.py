"""`advisor catalog build --sources DIR`: regenerate catalog/catalog.jsonl (and catalog/published_bench.jsonl) from
the upstream source tables in DIR and the installed libraries.

The project keeps no copy of the upstream tables: DIR is a folder the user points at (e.g. ../shared/data, or a
checkout of the upstream repositories), searched recursively by file name (see `REQUIRED_SOURCES`):
- timm's `pretrained_cfgs` table (one row per set of weights) and its published results/benchmark CSVs, with the
  `SOURCE.md` (or `timm-results.SOURCE.md`) beside them that names the repository commit;
- torchvision's weights metadata (one row per `*_Weights` enum member), with `torchvision-weights.SOURCE.md`;
- catalog/curated.json (kept in the project): models those tables do not cover (Hugging Face, packaged weights).

Parameter counts of timm, torchvision and Hugging Face entries are counted from the architecture instantiated on
the meta device (no weights, no download), so they are exact for the installed library versions. GMACs come from the
published tables (timm's benchmark CSVs, torchvision's `_ops`), labelled with their source.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from advisor.catalog.licenses import normalize_license
from advisor.catalog.schema import CatalogEntry
from advisor.catalog.sources_common import (
    CATALOG_DIR,
    CURATED_FILE,
    PUBLISHED_BENCH_FILE,
    REQUIRED_SOURCES,
    TIMM_BENCH_GMACS,
    TIMM_BENCH_PUBLISHED,
    TIMM_CFGS,
    TIMM_REPO_URL,
    TIMM_RESULTS,
    TV_REPO_URL,
    TV_WEIGHTS,
    _as_tables,
    _count_meta_params,
    _read_csv,
    family_of,
    locate_sources,
    pretrain_chain,
    source_commit,
    year_from_arxiv,
)
from advisor.catalog.sources_merge import merge_published_sources
from advisor.catalog.sources_timm import timm_entries
from advisor.catalog.sources_torchvision import torchvision_entries

__all__ = [
    "CATALOG_DIR",
    "CURATED_FILE",
    "PUBLISHED_BENCH_FILE",
    "REQUIRED_SOURCES",
    "TIMM_BENCH_GMACS",
    "TIMM_BENCH_PUBLISHED",
    "TIMM_CFGS",
    "TIMM_REPO_URL",
    "TIMM_RESULTS",
    "TV_REPO_URL",
    "TV_WEIGHTS",
    "build_catalog",
    "curated_entries",
    "family_of",
    "locate_sources",
    "pretrain_chain",
    "published_bench_records",
    "source_commit",
    "timm_entries",
    "torchvision_entries",
    "write_catalog",
    "write_published_bench",
    "year_from_arxiv",
]


# ------------------------------------------------------------------------------------------------------- curated


def _hf_count(spec: dict[str, Any]) -> tuple[int | None, str | None]:
    """Count parameters of a transformers class built from a config dict on the meta device."""
    import transformers

    cls = getattr(transformers, spec["class"])
    cfg_cls = getattr(transformers, spec["config_class"])
    config = cfg_cls(**spec.get("config", {}))
    n, _, err = _count_meta_params(lambda: cls(config))
    return n, (
        f"counted: transformers {transformers.__version__} {spec['class']} on meta device, "
        f"config from catalog/curated.json"
    ) if n else err


def curated_entries(path: Path = CURATED_FILE, count_params: bool = True) -> list[CatalogEntry]:
    """Entries from catalog/curated.json; `hf_arch` specs get their parameter count from the architecture."""
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for raw in data["entries"]:
        d = dict(raw)
        arch = d.pop("hf_arch", None)
        tarch = d.pop("timm_arch", None)
        if arch and count_params and d.get("n_params") is None:
            n, src = _hf_count(arch)
            if n:
                d["n_params"], d["n_params_source"] = n, src
        if tarch and count_params and d.get("n_params") is None:
            import timm

            n, _, _ = _count_meta_params(
                partial(timm.create_model, tarch["name"], pretrained=False, num_classes=tarch["num_classes"])
            )
            if n:
                d["n_params"] = n
                d["n_params_source"] = (
                    f"counted: timm {timm.__version__} {tarch['name']} on meta device "
                    "(the architecture the packaged weights load into)"
                )
        spdx, lclass = normalize_license(d.get("license_raw"))
        d.setdefault("license", spdx)
        d.setdefault("license_class", lclass)
        d["metrics"] = [dict(m) for m in d.get("metrics", [])]
        out.append(CatalogEntry.from_dict(d))
    return out


# --------------------------------------------------------------------------------------------------------- build


def build_catalog(
    sources: Path | str | dict[str, Path] | None,
    curated: Path = CURATED_FILE,
    *,
    count_params: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[CatalogEntry]:
    """All entries: timm, then torchvision, then curated; ids are unique (checked by `Catalog`)."""
    sources = _as_tables(sources)
    entries = timm_entries(sources, count_params=count_params, progress=progress)
    entries += torchvision_entries(sources, count_params=count_params)
    entries += _with_timm_gmacs(curated_entries(curated, count_params=count_params), sources)
    return merge_published_sources(entries, sources)  # MTEB, Open ASR Leaderboard, OpenCLIP when present


def _with_timm_gmacs(entries: list[CatalogEntry], tables: dict[str, Path]) -> list[CatalogEntry]:
    """Curated image entries without GMACs get timm's published figure for their architecture at their input
    size (packaged weights that load into a timm architecture: the same network, so the same count)."""
    import dataclasses

    from advisor.catalog.sources_common import _timm_repo
    from advisor.catalog.sources_timm import _timm_gmacs

    gmacs, repo = _timm_gmacs(tables), _timm_repo(tables)
    out = []
    for e in entries:
        size = e.input_size[1] if e.input_size and len(e.input_size) == 3 else None
        g = gmacs.get((e.architecture or "", size)) if e.gmacs is None and size else None
        if g is not None:
            e = dataclasses.replace(
                e,
                gmacs=g[0],
                gmacs_source=f"{repo}{g[1]} (infer_gmacs of timm {e.architecture} at {size}px, the architecture "
                "the packaged weights load into)",
            )
        out.append(e)
    return out


def write_catalog(entries: list[CatalogEntry], path: Path) -> Path:
    """Write entries as JSONL atomically, one entry per line, keys in schema order."""
    from advisor.catalog.store import Catalog
    from advisor.io import atomic_write_text

    Catalog(entries)  # refuses duplicates
    lines = [json.dumps(e.to_dict(), ensure_ascii=False, separators=(",", ":")) for e in entries]
    return atomic_write_text(path, "\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------------- published benchmarks

_BENCH_PROTOCOL = (
    "timm benchmark.py inference: mean synced step time over timed batches at the batch size in the row, "
    "on the machine, precision, memory layout and torch version the file name gives"
)


def _num(s: str | None) -> float | None:
    try:
        return float(str(s).replace(",", "")) if s not in (None, "") else None
    except ValueError:
        return None


def published_bench_records(sources: Path | str | dict[str, Path] | None) -> list[dict[str, Any]]:
    """Compact records of timm's published inference benchmarks for `advisor bench` (`TIMM_BENCH_PUBLISHED`).

    One `kind: "table"` record per file (repository, commit, file, protocol, machine and precision from the
    file name), then one `kind: "row"` record per model row with only what bench shows (img_size, batch_size,
    samples_per_sec, step_time_ms, param_count_m, gmacs), naming its table.
    """
    from advisor.bench.published import describe_file

    tables = _as_tables(sources)
    out: list[dict[str, Any]] = []
    for name in sorted(TIMM_BENCH_PUBLISHED):
        meta = describe_file(name)
        out.append(
            {
                "kind": "table",
                "table": name,
                "repository": TIMM_REPO_URL,
                "commit": source_commit(tables[name]),
                "file": f"results/{name}",
                "license": "Apache-2.0",
                "protocol": _BENCH_PROTOCOL,
                **{k: v for k, v in meta.items() if k != "file"},
            }
        )
        for r in _read_csv(name, tables):
            size, bs = _num(r.get("infer_img_size")), _num(r.get("infer_batch_size"))
            out.append(
                {
                    "kind": "row",
                    "table": name,
                    "model": r["model"],
                    "img_size": int(size) if size else None,
                    "batch_size": int(bs) if bs else None,
                    "samples_per_sec": _num(r.get("infer_samples_per_sec")),
                    "step_time_ms": _num(r.get("infer_step_time")),
                    "param_count_m": _num(r.get("param_count")),
                    "gmacs": _num(r.get("infer_gmacs")),
                }
            )
    return out


def write_published_bench(records: list[dict[str, Any]], path: Path) -> Path:
    """Write the published-benchmark records as JSONL atomically."""
    from advisor.io import atomic_write_text

    lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in records]
    return atomic_write_text(path, "\n".join(lines) + "\n")
