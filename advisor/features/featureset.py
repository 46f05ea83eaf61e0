"""`FeatureSet`: the features (and source logits) of one model on one set of samples, saved as .npz or .safetensors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advisor.errors import ResultsError
from advisor.io import atomic_write, to_jsonable


@dataclass
class FeatureSet:
    """Features of one model on one (sub)set of a dataset.

    Attributes:
        model_id: the model that made them.
        features: ``(N, D)`` float32.
        labels: ``(N,)`` int64 indices into `classes`; -1 for unlabelled samples.
        ids: sample ids, row-aligned with `features`.
        classes: class names of the dataset.
        logits: ``(N, Z)`` source-head logits, or None.
        meta: provenance and timings (cache key, cache_hit, seconds, device, precision, skipped items ...).
    """

    model_id: str
    features: np.ndarray
    labels: np.ndarray
    ids: list[str]
    classes: list[str]
    logits: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def summary(self) -> dict[str, Any]:
        """A small JSON-able summary (shape, cache hit, seconds, skipped)."""
        m = self.meta
        return {
            "model_id": self.model_id,
            "n": len(self),
            "dim": int(self.features.shape[1]) if self.features.ndim == 2 else None,
            "shape": list(self.features.shape),
            "logits_shape": list(self.logits.shape) if self.logits is not None else None,
            "classes": len(self.classes),
            "cache_hit": m.get("cache_hit"),
            "resumed_chunks": m.get("resumed_chunks"),
            "seconds": m.get("seconds"),
            "items_per_s": m.get("items_per_s"),
            "skipped": m.get("skipped", 0),
            "audio_cut": m.get("audio_cut"),
            "device": m.get("device"),
            "precision": m.get("precision"),
            "cache_key": m.get("cache_key"),
        }

    def save(self, path: str | Path) -> Path:
        """Write atomically as ``.npz`` (keys features, labels, ids, classes, logits, meta) or ``.safetensors``."""
        path = Path(path)
        if path.suffix == ".safetensors":
            from safetensors.numpy import save_file

            tensors = {
                "features": np.ascontiguousarray(self.features),
                "labels": self.labels.astype(np.int64),
            }
            if self.logits is not None:
                tensors["logits"] = np.ascontiguousarray(self.logits)
            md = {
                "model_id": self.model_id,
                "ids": json.dumps(self.ids),
                "classes": json.dumps(self.classes),
                "meta": json.dumps(to_jsonable(self.meta)),
            }
            return atomic_write(path, lambda p: save_file(tensors, str(p), metadata=md))

        def write(p: Path) -> None:
            arrays: dict[str, Any] = {
                "features": self.features,
                "labels": self.labels.astype(np.int64),
                "ids": np.asarray(self.ids, dtype=str),
                "classes": np.asarray(self.classes, dtype=str),
                "model_id": np.asarray(self.model_id),
                "meta": np.asarray(json.dumps(to_jsonable(self.meta))),
            }
            if self.logits is not None:
                arrays["logits"] = self.logits
            with open(p, "wb") as fh:
                np.savez(fh, **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> FeatureSet:
        """Read a FeatureSet written by `save` (no pickle).

        Raises:
            ResultsError: missing or unreadable file.
        """
        path = Path(path)
        if not path.is_file():
            raise ResultsError(
                f"feature file {path} does not exist", hint="run `advisor features` to create it"
            )
        try:
            if path.suffix == ".safetensors":
                from safetensors import safe_open
                from safetensors.numpy import load_file

                arrays = load_file(str(path))
                with safe_open(str(path), framework="numpy") as fh:
                    md = fh.metadata() or {}
                return cls(
                    model_id=md.get("model_id", ""),
                    features=arrays["features"],
                    labels=arrays["labels"],
                    ids=json.loads(md.get("ids", "[]")),
                    classes=json.loads(md.get("classes", "[]")),
                    logits=arrays.get("logits"),
                    meta=json.loads(md.get("meta", "{}")),
                )
            with np.load(path, allow_pickle=False) as z:
                return cls(
                    model_id=str(z["model_id"]) if "model_id" in z else "",
                    features=z["features"],
                    labels=z["labels"],
                    ids=[str(s) for s in z["ids"]],
                    classes=[str(s) for s in z["classes"]],
                    logits=z["logits"] if "logits" in z else None,
                    meta=json.loads(str(z["meta"])) if "meta" in z else {},
                )
        except (OSError, ValueError, KeyError) as e:
            raise ResultsError(f"feature file {path} is unreadable ({e})", hint="delete it and rerun") from e
