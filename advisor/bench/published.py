"""Published reference figures to set beside our measurements: GMACs (timm's benchmark tables, torchvision's weights
metadata) and inference throughput (timm's benchmark tables, CPU and GPU files), always labelled with their file.

Nothing upstream is read at run time: the figures come from records `advisor catalog build --sources DIR` derives,
shipped with the package: ``published_bench.jsonl`` (timm's inference benchmark rows, each naming its table; the
table records carry repository, commit, file and protocol) and the catalog (torchvision's ``_ops``, with its source).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from advisor.catalog.files import PUBLISHED_BENCH_FILE

TIMM_CONVENTION = (
    "timm benchmark infer_gmacs (fvcore convention: convs, matmuls, attention + norm/pool terms)"
)
TV_CONVENTION = "torchvision weights meta _ops (matmul-class ops only: compare with gmacs_torch)"


def published_bench_path() -> Path | None:
    """The shipped published-benchmark records (catalog package data, via `advisor.catalog.files`), or None."""
    from advisor.catalog.files import data_file

    return data_file(PUBLISHED_BENCH_FILE)


@functools.lru_cache(maxsize=4)
def _load(path: str) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """(table name -> table record, timm architecture -> row records) from a published_bench.jsonl."""
    tabs: dict[str, dict[str, Any]] = {}
    rows: dict[str, list[dict[str, Any]]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            if rec.get("kind") == "table":
                tabs[rec["table"]] = rec
            elif rec.get("kind") == "row":
                rows.setdefault(rec["model"], []).append(rec)
    return tabs, rows


def published_bench() -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The published benchmark tables and rows available here (empty when the records file is absent)."""
    p = published_bench_path()
    return _load(str(p)) if p else ({}, {})


def _provenance(table: dict[str, Any]) -> str:
    commit = table.get("commit")
    return f"{table.get('repository')}@{commit[:7] if commit else 'unknown-commit'} {table.get('file')}"


def split_model_id(model_id: str) -> tuple[str, str, str | None]:
    """``"timm:resnet50.a1_in1k"`` -> ("timm", "resnet50", "a1_in1k") (`ModelId`'s fields).

    Bare names follow the registry's rule (a path is ``local``); an id that does not parse gives source "", so
    nothing is looked up for it.
    """
    from advisor.errors import UsageError
    from advisor.models.ids import ModelId

    try:
        mid = ModelId.parse(model_id)
    except UsageError:
        return "", model_id, None
    return mid.source, mid.name, mid.tag or None


def describe_file(name: str) -> dict[str, Any]:
    """Parse timm's benchmark file names, e.g. ``benchmark-infer-amp-nchw-pt291-cu130-5090-dynamo.csv``."""
    parts = name.removesuffix(".csv").split("-")
    d: dict[str, Any] = {
        "file": name,
        "device_class": None,
        "precision": None,
        "layout": None,
        "torch": None,
        "accelerator": None,
        "compiled": "dynamo" in parts,
    }
    if len(parts) >= 6 and parts[0] == "benchmark" and parts[1] == "infer":
        d["precision"], d["layout"] = parts[2], parts[3]
        d["torch"] = parts[4].removeprefix("pt")
        d["device_class"] = "cpu" if parts[5] == "cpu" else "cuda"
        d["accelerator"] = "-".join(p for p in parts[5:] if p != "dynamo")
    return d


def published_gmacs(model_id: str, input_size: int | None = None) -> list[dict[str, Any]]:
    """Published GMACs per sample for ``model_id`` at ``input_size`` (image side), each with its source file.

    timm models: the first timm benchmark table (by name, descending) with that model and size (``infer_gmacs``;
    GMACs do not depend on the machine, so any table will do).
    torchvision models: the catalog entry's ``gmacs`` (torchvision's ``_ops``, which counts multiply-adds, i.e.
    GMACs); the default weights when the id names none. Returns [] when nothing is published.
    """
    source, arch, _ = split_model_id(model_id)
    out: list[dict[str, Any]] = []
    if source == "timm":
        tabs, rows = published_bench()
        for name in sorted({r["table"] for r in rows.get(arch, [])}, reverse=True):
            for row in rows[arch]:
                if row["table"] != name or row.get("gmacs") is None:
                    continue
                size = row.get("img_size")
                if input_size is not None and size is not None and int(size) != int(input_size):
                    continue
                out.append(
                    {
                        "gmacs": row["gmacs"],
                        "img_size": size,
                        "source": name,
                        "provenance": _provenance(tabs.get(name, {})),
                        "column": "infer_gmacs",
                        "convention": TIMM_CONVENTION,
                        "compare_with": "gmacs",
                    }
                )
                break
            if out:
                break
    if not out:
        out = _catalog_gmacs(model_id, source, arch, input_size)
    return out


def _catalog_gmacs(model_id: str, source: str, arch: str, input_size: int | None) -> list[dict[str, Any]]:
    try:
        from advisor.catalog.store import load_catalog

        cat = load_catalog()
    except Exception:  # noqa: BLE001 - the catalog is a convenience here, never a requirement
        return []
    entries = (
        [cat.get(model_id)]
        if model_id in cat
        else sorted(
            (e for e in cat if e.source == source and e.architecture == arch),
            key=lambda e: "default" not in e.tags,  # the default weights first, like the untagged id means
        )
    )
    for e in entries:
        if e.gmacs is None:
            continue
        size = e.input_size[-1] if e.input_size else None
        if input_size is not None and size is not None and size != input_size:
            continue
        return [
            {
                "gmacs": e.gmacs,
                "img_size": size,
                "source": f"catalog entry {e.id}: {e.gmacs_source}",
                "column": "gflops" if source == "torchvision" else "gmacs",
                "weights": e.source_id if source == "torchvision" else None,
                "convention": TV_CONVENTION if source == "torchvision" else TIMM_CONVENTION,
                "compare_with": "gmacs_torch" if source == "torchvision" else "gmacs",
            }
        ]
    return []


def published_throughput(
    model_id: str, device_class: str, input_size: int | None = None
) -> list[dict[str, Any]]:
    """timm's published inference throughput rows for the same model on the same device class ("cpu"/"cuda").

    Only timm models are looked up (the tables name timm architectures). Each row: file, accelerator, precision,
    layout, compiled, torch, img_size, batch_size, samples_per_sec, step_time_ms, param_count_m.
    """
    source, arch, _ = split_model_id(model_id)
    if source != "timm":
        return []
    dev = "cuda" if str(device_class).startswith("cuda") else "cpu"
    tabs, rows = published_bench()
    out = []
    for row in sorted(rows.get(arch, []), key=lambda r: str(r["table"])):
        meta = describe_file(row["table"])
        if meta["device_class"] != dev:
            continue
        size = row.get("img_size")
        if input_size is not None and size is not None and int(size) != int(input_size):
            continue
        out.append(
            {
                **meta,
                "provenance": _provenance(tabs.get(row["table"], {})),
                "protocol": tabs.get(row["table"], {}).get("protocol"),
                "img_size": size,
                "batch_size": row.get("batch_size"),
                "samples_per_sec": row.get("samples_per_sec"),
                "step_time_ms": row.get("step_time_ms"),
                "param_count_m": row.get("param_count_m"),
            }
        )
    return out
