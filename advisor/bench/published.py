"""Published reference figures to set beside our measurements: GMACs (timm's benchmark CSVs, torchvision's weights
metadata) and inference throughput (timm's benchmark CSVs, CPU and GPU files), always labelled with their file.

Tables are looked up in, in order: ``$ADVISOR_PUBLISHED_DIR`` (colon-separated folders), then the vendored copies in
the repository's ``catalog/sources/`` (timm results at aa4b585, torchvision 0.29.1 metadata; provenance beside them).
When no table is found, the catalog's ``gmacs`` field (itself copied from those tables) is used.
"""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[2]

TIMM_CONVENTION = (
    "timm benchmark infer_gmacs (fvcore convention: convs, matmuls, attention + norm/pool terms)"
)
TV_CONVENTION = "torchvision weights meta _ops (matmul-class ops only: compare with gmacs_torch)"


def _search_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("ADVISOR_PUBLISHED_DIR", "").split(os.pathsep) if p]
    dirs.append(_REPO / "catalog" / "sources")
    return [d for d in dirs if d.is_dir()]


@functools.lru_cache(maxsize=8)
def _tables(dirs_key: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in dirs_key:
        for p in sorted(Path(d).glob("*.csv")):
            found.setdefault(p.name, p)  # the first folder wins for a given file name
    return found


def tables() -> dict[str, Path]:
    """Published CSV tables available here: file name -> path."""
    return _tables(tuple(str(d) for d in _search_dirs()))


@functools.lru_cache(maxsize=64)
def _read(path: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _num(s: str | None) -> float | None:
    try:
        return float(str(s).replace(",", "")) if s not in (None, "") else None
    except ValueError:
        return None


def split_model_id(model_id: str) -> tuple[str, str, str | None]:
    """``"timm:resnet50.a1_in1k"`` -> ("timm", "resnet50", "a1_in1k"); a bare name is taken as timm."""
    source, _, name = model_id.partition(":") if ":" in model_id else ("timm", "", model_id)
    arch, _, tag = name.partition(".")
    return source, arch, tag or None


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

    timm models: the first timm benchmark file (by name, descending) with that model and size (``infer_gmacs``;
    GMACs do not depend on the machine, so any file will do).
    torchvision models: ``torchvision-weights.csv`` (``gflops``, which counts multiply-adds, i.e. GMACs); the
    default weights when the id names none. Returns [] when nothing is published.
    """
    source, arch, tag = split_model_id(model_id)
    out: list[dict[str, Any]] = []
    tabs = tables()
    if source == "timm":
        bench = sorted((n for n in tabs if n.startswith("benchmark-infer-")), reverse=True)
        for name in bench:
            for row in _read(str(tabs[name])):
                if row.get("model") != arch:
                    continue
                size = _num(row.get("infer_img_size"))
                if input_size is not None and size is not None and int(size) != int(input_size):
                    continue
                g = _num(row.get("infer_gmacs"))
                if g is not None:
                    out.append(
                        {
                            "gmacs": g,
                            "img_size": int(size) if size else None,
                            "source": name,
                            "column": "infer_gmacs",
                            "convention": TIMM_CONVENTION,
                            "compare_with": "gmacs",
                        }
                    )
                    break
            if out:
                break
    elif source == "torchvision" and "torchvision-weights.csv" in tabs:
        rows = [r for r in _read(str(tabs["torchvision-weights.csv"])) if r.get("builder") == arch]
        if tag:
            rows = [r for r in rows if r.get("weights") == tag] or rows
        else:
            rows = [r for r in rows if r.get("is_default") == "True"] or rows
        for r in rows[:1]:
            size = _num(r.get("tf_crop_size"))
            if input_size is not None and size is not None and int(size) != int(input_size):
                continue
            g = _num(r.get("gflops"))
            if g is not None:
                out.append(
                    {
                        "gmacs": g,
                        "img_size": int(size) if size else None,
                        "source": "torchvision-weights.csv",
                        "column": "gflops",
                        "weights": r.get("weights_id"),
                        "convention": TV_CONVENTION,
                        "compare_with": "gmacs_torch",
                    }
                )
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
        else [e for e in cat if e.source == source and e.architecture == arch]
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
                "column": "gmacs",
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
    tabs = tables()
    out = []
    for name in sorted(tabs):
        meta = describe_file(name)
        if meta["device_class"] != dev:
            continue
        for row in _read(str(tabs[name])):
            if row.get("model") != arch:
                continue
            size = _num(row.get("infer_img_size"))
            if input_size is not None and size is not None and int(size) != int(input_size):
                continue
            bs = _num(row.get("infer_batch_size"))
            out.append(
                {
                    **meta,
                    "img_size": int(size) if size else None,
                    "batch_size": int(bs) if bs else None,
                    "samples_per_sec": _num(row.get("infer_samples_per_sec")),
                    "step_time_ms": _num(row.get("infer_step_time")),
                    "param_count_m": _num(row.get("param_count")),
                }
            )
    return out
