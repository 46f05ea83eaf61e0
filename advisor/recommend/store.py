"""The run-level result caches of recommend (scores, probes, floors) in ``cache_dir("probes")``, and feature keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _cache_path(kind: str, key: str) -> Path:
    from advisor.paths import cache_dir

    return cache_dir("probes") / f"{kind}-{key}.json"


def _cache_get(kind: str, key: str) -> dict | None:
    import json

    p = _cache_path(kind, key)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a torn/corrupt entry is recomputed


def _cache_put(kind: str, key: str, value: dict) -> None:
    from advisor.io import atomic_write_json

    atomic_write_json(_cache_path(kind, key), value)


def feature_key(fs: Any, model_id: str, dataset_fp: str, ids_hash: str) -> str:
    """The features' content key: the features cache key when the features module gives one, else our own."""
    from advisor.io import stable_hash

    meta = getattr(fs, "meta", None) or {}
    k = meta.get("cache_key") or meta.get("key")
    return str(k) if k else stable_hash({"model": model_id, "data": dataset_fp, "ids": ids_hash})
