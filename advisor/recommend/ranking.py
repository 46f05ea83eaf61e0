"""Combining ranking signals (priors, transferability scores, domain similarity) and the final probe ranking.

The weights live in ONE place, `WEIGHTS`. They are set from the ranking-quality benchmark
(benchmarks/ranking/RESULTS.md and analysis.md): over four real targets (Fashion-MNIST, Banking77, digits, FSDD) with
the offline zoos, leave-one-out kNN and nearest-class-mean accuracy were the only signals that ranked well on the
targets not used to choose them (weighted tau about 0.6-0.7), while LogME, SFDA, ETran-LDA, LEEP and the ImageNet prior
did well on some targets and failed on others (the ImageNet prior had weighted tau -0.53 on digits). The other
scores are still computed and reported, with weight 0. With 3-5 models per zoo tau is noisy: treat the predicted
ranking as a shortlist filter. The final ranking is by measured probe accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# signal name -> weight. Score names are those of advisor.scores; "prior_*" come from the catalog; "domain_*"
# from the dataset-similarity probe. A score not listed gets DEFAULT_SCORE_WEIGHT.
WEIGHTS: dict[str, float] = {
    "knn_loo": 1.0,  # leave-one-out kNN accuracy on the features: the best held-out signal in benchmarks/ranking
    "ncm_loo": 1.0,  # nearest-class-mean accuracy: second best, and it agrees with probes on small samples
}
# Every other score (logme, sfda, nleep, leep, ...) and the priors (prior_imagenet_top1, prior_log_params,
# domain_confidence) are reported but get weight 0: on held-out targets they were unreliable (see the module doc).
DEFAULT_SCORE_WEIGHT = 0.0
WEIGHTS_NOTE = (
    "weights from benchmarks/ranking (kNN + NCM accuracy; other signals reported with weight 0). "
    "The final ranking is by measured linear-probe accuracy."
)


def weights_record() -> dict:
    """The weights and their status, as stored in every result."""
    return {"weights": dict(WEIGHTS), "default_score_weight": DEFAULT_SCORE_WEIGHT, "note": WEIGHTS_NOTE}


def weight_of(signal: str) -> float:
    """The weight of a signal (listed, else DEFAULT_SCORE_WEIGHT for scores, 0 for unknown non-score signals)."""
    if signal in WEIGHTS:
        return WEIGHTS[signal]
    if signal.startswith(("prior_", "domain_")):
        return 0.0
    return DEFAULT_SCORE_WEIGHT


def zscores(values: Sequence[float | None]) -> list[float | None]:
    """Standardise the known values (mean 0, sd 1); None stays None; a constant signal gives zeros."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    if not known:
        return [None] * len(values)
    mu = float(np.mean(known))
    sd = float(np.std(known))
    return [
        None if v is None or not math.isfinite(v) else (0.0 if sd < 1e-12 else (v - mu) / sd) for v in values
    ]


def rank_scores(values: Sequence[float | None]) -> list[float | None]:
    """Centred average ranks mapped to z-like units (best = highest); None stays None."""
    idx = [i for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    out: list[float | None] = [None] * len(values)
    if not idx:
        return out
    from scipy.stats import rankdata

    r = rankdata([values[i] for i in idx])  # 1..m, ties averaged
    m = len(idx)
    sd = math.sqrt((m * m - 1) / 12) if m > 1 else 1.0
    for j, i in enumerate(idx):
        out[i] = float((r[j] - (m + 1) / 2) / sd)
    return out


@dataclass
class Prediction:
    """A candidate's combined predicted score: weighted mean of signal z-scores, and its uncertainty."""

    score: float | None
    uncertainty: float | None  # weighted sd of the signal z-scores (disagreement between signals)
    signals: dict[str, float]  # signal -> z (oriented: higher = better)
    rank: int | None = None

    def to_dict(self) -> dict:
        return {
            "score": self.score,
            "uncertainty": self.uncertainty,
            "rank": self.rank,
            "signals": self.signals,
        }


def combine(
    signals: Mapping[str, Mapping[str, float | None]],
    higher_is_better: Mapping[str, bool] | None = None,
    *,
    method: str = "zscore",
    weights: Mapping[str, float] | None = None,
) -> dict[str, Prediction]:
    """Combine per-candidate signals into one predicted score per candidate.

    Each signal is standardised across candidates (``zscore``) or turned into centred ranks (``rank``), oriented
    so that higher is better, and averaged with `WEIGHTS` over the signals a candidate has (missing signals do not
    count; weights are renormalised per candidate). Signals with fewer than 2 known values are dropped.

    Args:
        signals: ``{signal_name: {model_id: value or None}}``.
        higher_is_better: orientation per signal (default True).
        method: ``zscore`` or ``rank``.
        weights: override of `WEIGHTS` (for experiments; the product uses the default).

    Returns:
        ``{model_id: Prediction}`` with ranks 1..n by score (candidates with no signal get score None, no rank).
    """
    hib = dict(higher_is_better or {})
    models: list[str] = []
    for per in signals.values():
        for m in per:
            if m not in models:
                models.append(m)
    norm = zscores if method == "zscore" else rank_scores
    per_model: dict[str, dict[str, float]] = {m: {} for m in models}
    for name, per in signals.items():
        vals = [per.get(m) for m in models]
        if sum(v is not None and math.isfinite(v) for v in vals) < 2:
            continue
        sign = 1.0 if hib.get(name, True) else -1.0
        for m, z in zip(models, norm([None if v is None else sign * v for v in vals]), strict=True):
            if z is not None:
                per_model[m][name] = z
    out: dict[str, Prediction] = {}
    for m in models:
        zs = per_model[m]
        ws = {k: (weights[k] if weights and k in weights else weight_of(k)) for k in zs}
        total = sum(ws.values())
        if not zs or total <= 0:
            out[m] = Prediction(None, None, zs)
            continue
        mean = sum(ws[k] * zs[k] for k in zs) / total
        var = sum(ws[k] * (zs[k] - mean) ** 2 for k in zs) / total
        out[m] = Prediction(float(mean), float(math.sqrt(var)), zs)
    ranked = sorted((m for m in models if out[m].score is not None), key=lambda m: -out[m].score)
    for i, m in enumerate(ranked, 1):
        out[m].rank = i
    return out


def pareto_front(points: Mapping[str, tuple[float | None, float | None]]) -> set[str]:
    """Ids on the front of (cost lower-better, value higher-better); points with a missing coordinate are off it."""
    pts = {k: v for k, v in points.items() if v[0] is not None and v[1] is not None}
    front = set()
    for k, (c, a) in pts.items():
        dominated = any(
            (c2 <= c and a2 >= a) and (c2 < c or a2 > a) for k2, (c2, a2) in pts.items() if k2 != k
        )
        if not dominated:
            front.add(k)
    return front


def tie_groups(results: Sequence[tuple[str, float, tuple[float, float] | None]]) -> dict[str, int]:
    """Group models whose accuracy intervals overlap the group leader's (sorted by accuracy, best first).

    Args:
        results: (model_id, accuracy, (ci_low, ci_high) or None).

    Returns:
        ``{model_id: group}`` with group 1 holding the best model.
    """
    order = sorted(results, key=lambda t: -t[1])
    groups: dict[str, int] = {}
    g = 0
    leader_low = None
    for mid, acc, ci in order:
        lo, hi = ci if ci else (acc, acc)
        if leader_low is None or hi < leader_low:
            g += 1
            leader_low = lo
        groups[mid] = g
    return groups


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman rank correlation (None when undefined)."""
    if len(a) < 2:
        return None
    from scipy.stats import spearmanr

    r = spearmanr(a, b).statistic
    return None if r is None or not math.isfinite(r) else float(r)
