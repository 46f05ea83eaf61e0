"""The run-level result caches of recommend (scores, probes, floors) in ``cache_dir("probes")``, and feature keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advisor.cache import Cache

_CACHE = Cache("probes", suffix=".json")  # file names `{kind}-{key}.json`, as before the cache module


def _cache_path(kind: str, key: str) -> Path:
    return _CACHE.path(f"{kind}-{key}")


def _cache_get(kind: str, key: str) -> dict | None:
    """The cached value, or None (absent; or damaged: deleted with one warning, and recomputed)."""
    return _CACHE.get_json(f"{kind}-{key}")


def _cache_put(kind: str, key: str, value: dict) -> None:
    """Store a value atomically (StorageError when the cache folder is read-only or the disk is full)."""
    _CACHE.put_json(f"{kind}-{key}", value)


def feature_key(fs: Any, model_id: str, dataset_fp: str, ids_hash: str) -> str:
    """The features' content key: the features cache key when the features module gives one, else our own."""
    from advisor.io import stable_hash

    meta = getattr(fs, "meta", None) or {}
    k = meta.get("cache_key") or meta.get("key")
    return str(k) if k else stable_hash({"model": model_id, "data": dataset_fp, "ids": ids_hash})
