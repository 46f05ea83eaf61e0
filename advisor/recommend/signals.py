"""Per-candidate signals computed from its frozen features: dataset similarity and the score records."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, cast

import numpy as np

from advisor.recommend.records import ScoreRecord


def domain_signals(
    features: np.ndarray, logits: np.ndarray | None, logits_kind: str | None = None
) -> dict[str, float | None]:
    """Dataset-similarity signals: how familiar the data looks to the model.

    - ``source_confidence``: mean max softmax probability of the source head (high = looks like pretraining data);
    - ``source_entropy_norm``: mean softmax entropy / log(Z) in [0, 1] (1 = uniform = unfamiliar); this is the
      domain gap the strategy advice uses;
    - ``feature_effective_rank``: exp(entropy of the normalised covariance spectrum) / D: how many feature
      directions the data actually uses (low = features collapse on this data).

    Source outputs that already are probabilities (``logits_kind="probabilities"``, or by the value rule of
    `advisor.scores.prepare.looks_like_probabilities`) are renormalised, not softmaxed a second time.
    """
    from advisor.scores.prepare import looks_like_probabilities

    out: dict[str, float | None] = {"source_confidence": None, "source_entropy_norm": None}
    if logits is not None and logits.ndim == 2 and logits.shape[1] > 1:
        z = logits.astype(np.float64)
        if logits_kind == "probabilities" or (logits_kind is None and looks_like_probabilities(z)):
            p = np.clip(z, 0.0, None)
            rs = p.sum(1, keepdims=True)
            p = np.where(rs > 0, p / np.where(rs > 0, rs, 1.0), 1.0 / z.shape[1])
        else:
            z = z - z.max(1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(1, keepdims=True)
        ent = -(p * np.log(np.clip(p, 1e-30, None))).sum(1) / math.log(z.shape[1])
        out["source_confidence"] = float(p.max(1).mean())
        out["source_entropy_norm"] = float(ent.mean())
    x = features.astype(np.float64)
    x = x - x.mean(0)
    try:
        s = np.linalg.svd(x[: min(len(x), 2000)], compute_uv=False) ** 2
        s = s[s > 1e-12]
        p = s / s.sum()
        out["feature_effective_rank"] = float(np.exp(-(p * np.log(p)).sum()) / features.shape[1])
    except np.linalg.LinAlgError:
        out["feature_effective_rank"] = None
    return out


def _score_dict(r: Any) -> ScoreRecord:
    d = dataclasses.asdict(r) if dataclasses.is_dataclass(r) and not isinstance(r, type) else dict(r)
    if d.get("ci") is not None:
        d["ci"] = list(d["ci"])
    return cast(ScoreRecord, d)


def _logits(fs: Any) -> np.ndarray | None:
    lg = getattr(fs, "logits", None)
    return None if lg is None else np.asarray(lg)
