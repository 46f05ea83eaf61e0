"""The feature cache on disk: entry and index keys, resumable chunks, the assembled entry (via `advisor.cache`).

Layout under ``cache_dir("features")``: one folder per entry key holding ``chunk-NNNNNN.npz`` files while a run goes
on, then ``features.npz`` + ``meta.json``; ``index/<index key>.json`` maps a model id (plus versions, local file
content, precision, device type and the samples) to the entry key, so a hit needs no model loading.
The key formulas are frozen: a change re-keys every user's cache (tests/models/test_features_engine.py pins them).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from advisor.cache import Cache, content_key
from advisor.errors import ResultsError
from advisor.features.featureset import FeatureSet
from advisor.paths import cache_dir

SCHEMA_VERSION = 1
FINAL_FILE = "features.npz"
META_FILE = "meta.json"


def versions() -> dict[str, str | None]:
    """Library versions that change features (part of the index key)."""
    from advisor.versions import package_versions

    return package_versions(("torch", "timm", "transformers", "onnxruntime", "advisor"), python=False)


def index_key(
    model_id: str,
    pretrained: bool,
    precision_req: str,
    device_type: str,
    data_key: dict,
    runtime: str = "eager",
) -> str:
    """The index key of a model id on a set of samples: what is known before the model is loaded (the requested
    runtime only when it is not eager, so eager keys are those of earlier versions)."""
    from advisor.models.local import local_content_key

    extra = {} if runtime == "eager" else {"runtime": runtime}
    return content_key(
        extra
        | {
            "schema": SCHEMA_VERSION,
            "model_id": model_id,
            # A local file is keyed by its content (and its sidecar's), so an overwritten model is recomputed.
            "local_content": local_content_key(model_id),
            "pretrained": pretrained,
            "precision": precision_req,
            "device_type": device_type,
            "versions": versions(),
            **data_key,
        },
        length=24,
    )


def entry_key(signature: Any, precision: str, data_key: dict) -> str:
    """The entry key: the loaded model's preprocessing signature, the resolved precision and the samples."""
    return content_key(
        {"schema": SCHEMA_VERSION, "signature": signature, "precision": precision, **data_key}, length=24
    )


def index_path(key: str) -> Path:
    """The index file of an index key (its folder is created)."""
    return cache_dir("features", "index") / f"{key}.json"


def read_index(path: Path) -> str | None:
    """The entry key an index file points at, or None (absent or damaged: deleted, one warning)."""
    value = Cache("features", "index", suffix=".json").read(path.stem, _index_value, what="index file")
    return value or None


def _index_value(p: Path) -> str:
    key = json.loads(p.read_text(encoding="utf-8"))["key"]
    if not isinstance(key, str):
        raise TypeError(f"key is {type(key).__name__}, not a string")
    return key


def write_index(path: Path | None, key: str) -> None:
    """Point the index file at the entry key (atomic); nothing for a model passed already loaded."""
    if path is not None:
        Cache("features", "index", suffix=".json").put_json(path.stem, {"key": key})


def entry_paths(key: str) -> tuple[Path, Path, Path]:
    """(entry folder, created; its assembled features file; its meta file)."""
    entry = cache_dir("features", key)
    return entry, entry / FINAL_FILE, entry / META_FILE


def chunk_path(entry: Path, c: int) -> Path:
    """The file of chunk ``c`` of an entry."""
    return entry / f"chunk-{c:06d}.npz"


def write_chunk(
    path: Path, pos: np.ndarray, feats: np.ndarray, logits: np.ndarray | None, skipped: list
) -> None:
    """Write one finished chunk atomically (positions, features, logits, skipped items with reasons)."""

    def write(p: Path) -> None:
        arrays: dict[str, Any] = {"pos": pos, "features": feats, "skipped": np.asarray(json.dumps(skipped))}
        if logits is not None:
            arrays["logits"] = logits
        with open(p, "wb") as fh:
            np.savez(fh, **arrays)

    Cache(folder=path.parent, suffix=path.suffix).write(path.stem, write)


def _load_chunk(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        ch = {
            "pos": z["pos"],
            "features": z["features"],
            "logits": z["logits"] if "logits" in z else None,
            "skipped": json.loads(str(z["skipped"])),
        }
    if ch["pos"].ndim != 1 or ch["features"].ndim != 2 or len(ch["features"]) != len(ch["pos"]):
        raise ValueError(f"pos {ch['pos'].shape} and features {ch['features'].shape} do not match")
    if ch["logits"] is not None and (ch["logits"].ndim < 1 or len(ch["logits"]) != len(ch["pos"])):
        raise ValueError(f"logits {ch['logits'].shape} do not match pos {ch['pos'].shape}")
    if not isinstance(ch["skipped"], list):
        raise ValueError("skipped is not a list")
    return ch


def read_chunk(path: Path) -> dict[str, Any] | None:
    """Read one finished chunk; a damaged one (truncated or corrupt file, missing or inconsistent arrays) is
    deleted and None returned, so that the caller recomputes it; this is logged once per cache entry."""
    return Cache(folder=path.parent, suffix=path.suffix).read(
        path.stem, _load_chunk, group=path.parent, what="chunk"
    )


def load_hit(final: Path, t_start: float) -> FeatureSet | None:
    """The cached FeatureSet, or None (file deleted, one warning) when the file is damaged: recompute it."""
    fs = Cache(folder=final.parent, suffix=final.suffix).read(final.stem, _load_featureset, what="file")
    if fs is None:
        return None
    fs.meta = dict(fs.meta)
    fs.meta["compute_seconds_original"] = fs.meta.get("compute_seconds")
    fs.meta["cache_hit"] = True
    fs.meta["seconds"] = round(time.perf_counter() - t_start, 4)
    return fs


def _load_featureset(path: Path) -> FeatureSet:
    try:
        return FeatureSet.load(path)
    except ResultsError as e:  # unreadable: damaged, like the errors the cache catches itself
        raise ValueError(e.message) from e


def clear() -> int:
    """Delete every cached feature entry; returns how many entries were removed."""
    root = cache_dir("features")
    n = 0
    for p in root.iterdir():
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n
