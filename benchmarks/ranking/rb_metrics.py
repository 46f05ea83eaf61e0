"""Ranking-quality metrics of the ranking benchmark: weighted/plain Kendall tau, top-1 regret, paired bootstrap CIs,
and the z-score combination of transferability signals.

Conventions (used everywhere in benchmarks/ranking):
- a *score vector* has one entry per zoo model, **higher = predicted better**; a *truth vector* holds the
  ground-truth held-out linear-probe accuracies (fractions) in the same model order;
- weighted tau is ``scipy.stats.weightedtau(score, truth)`` with its defaults: hyperbolic weigher ``1/(r+1)``
  on the rank, ``rank=True`` (the average of the two weightings, by score and by truth), so disagreements among
  the top models cost more than among the bottom ones;
- top-1 regret = best ground-truth accuracy minus the ground-truth accuracy of the top pick (accuracy points,
  >= 0); when several models tie for the top score the *expected* regret of a random tie-break is reported.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np


def _clean(score: Sequence[float | None]) -> np.ndarray:
    """Scores as float64 with None/NaN/inf (not applicable) mapped to a value below every finite score."""
    s = np.array([np.nan if v is None else float(v) for v in score], dtype=np.float64)
    bad = ~np.isfinite(s)
    if bad.all():
        return np.zeros_like(s)
    if bad.any():
        finite = s[~bad]
        s[bad] = finite.min() - 1.0 - abs(finite.max() - finite.min())
    return s


def weighted_tau(score: Sequence[float | None], truth: Sequence[float]) -> float:
    """Weighted Kendall tau (scipy defaults, hyperbolic weights) between a predicted score and the truth.

    Returns 0.0 when undefined (a constant vector: no ranking information).
    """
    from scipy.stats import weightedtau

    s, t = _clean(score), np.asarray(truth, dtype=np.float64)
    if len(s) < 2 or np.ptp(s) == 0 or np.ptp(t) == 0:
        return 0.0
    v = float(weightedtau(s, t).statistic)
    return 0.0 if math.isnan(v) else v


def kendall_tau(score: Sequence[float | None], truth: Sequence[float]) -> float:
    """Kendall tau-b between a predicted score and the truth (0.0 when undefined)."""
    from scipy.stats import kendalltau

    s, t = _clean(score), np.asarray(truth, dtype=np.float64)
    if len(s) < 2 or np.ptp(s) == 0 or np.ptp(t) == 0:
        return 0.0
    v = float(kendalltau(s, t).statistic)
    return 0.0 if math.isnan(v) else v


def top1_regret(score: Sequence[float | None], truth: Sequence[float]) -> float:
    """Best truth minus the truth of the top-scored model (expected value over ties at the top); >= 0."""
    s, t = _clean(score), np.asarray(truth, dtype=np.float64)
    top = np.flatnonzero(s >= s.max() - 1e-12)
    return float(t.max() - t[top].mean())


def random_pick_regret(truth: Sequence[float]) -> float:
    """Expected top-1 regret of picking a model uniformly at random (a reference, not a baseline to beat)."""
    t = np.asarray(truth, dtype=np.float64)
    return float(t.max() - t.mean())


def zscore(values: Sequence[float | None]) -> np.ndarray:
    """Standardise one signal across the candidate models; NaN stays NaN (not applicable), constant -> zeros."""
    v = np.array([np.nan if x is None else float(x) for x in values], dtype=np.float64)
    v[~np.isfinite(v)] = np.nan
    ok = ~np.isnan(v)
    out = np.full_like(v, np.nan)
    if ok.sum() == 0:
        return out
    mu = v[ok].mean()
    sd = v[ok].std()
    out[ok] = (v[ok] - mu) / sd if sd > 1e-12 else 0.0
    return out


def combine(signals: Mapping[str, Sequence[float | None]], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted mean of per-signal z-scores, per model, over the signals applicable to that model.

    Args:
        signals: name -> one value per model, already oriented so that higher = better.
        weights: name -> non-negative weight; names absent from `signals` are ignored.

    Returns:
        One combined score per model (NaN for a model with no applicable weighted signal).
    """
    names = [n for n, w in weights.items() if w > 0 and n in signals]
    if not names:
        n_models = len(next(iter(signals.values()))) if signals else 0
        return np.full(n_models, np.nan)
    z = np.stack([zscore(signals[n]) for n in names])  # (S, M)
    w = np.array([weights[n] for n in names], dtype=np.float64)[:, None] * ~np.isnan(z)
    num = np.nansum(np.nan_to_num(z) * w, axis=0)
    den = w.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def equal_weight_combos(names: Sequence[str], max_size: int) -> list[dict[str, float]]:
    """All equal-weight combinations of 1..max_size of the given signal names (sorted, deterministic)."""
    out: list[dict[str, float]] = []
    for k in range(1, max_size + 1):
        for combo in itertools.combinations(sorted(names), k):
            out.append({n: 1.0 for n in combo})
    return out


def bootstrap_accuracy(correct: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One paired bootstrap draw of per-model accuracies: the same resampled test items for every model.

    Args:
        correct: (M, N) boolean/0-1 matrix, model m right on test item n.
    """
    n = correct.shape[1]
    idx = rng.integers(0, n, size=n)
    return correct[:, idx].mean(1)


def percentile_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap draws."""
    v = np.asarray(values, dtype=np.float64)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return float(np.percentile(v, lo)), float(np.percentile(v, hi))
