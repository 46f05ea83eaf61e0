"""Evaluation statistics of the probe: macro-F1, its bootstrap interval and the Wilson interval of accuracy."""

from __future__ import annotations

import math

import numpy as np


def macro_f1_score(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Macro F1 over the classes present in `y` (a class never predicted and never true is ignored)."""
    tp = np.bincount(y[pred == y], minlength=n_classes).astype(float)
    support = np.bincount(y, minlength=n_classes).astype(float)
    predicted = np.bincount(pred, minlength=n_classes).astype(float)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1[support > 0].mean())


def bootstrap_ci(
    y: np.ndarray, pred: np.ndarray, n_classes: int, *, n_boot: int = 500, seed: int = 0, level: float = 0.95
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Percentile bootstrap intervals (over samples) of accuracy and macro-F1; returns (acc_ci, f1_ci)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    correct = (y == pred).astype(np.float64)
    accs = np.empty(n_boot)
    f1s = np.empty(n_boot)
    chunk = max(1, min(n_boot, 2_000_000 // max(n, 1)))
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(m, n))
        accs[start : start + m] = correct[idx].mean(1)
        # per-resample confusion counts via one bincount over (resample, class) pairs
        yb, pb, cb = y[idx], pred[idx], correct[idx]
        off = (np.arange(m) * n_classes)[:, None]
        tp = np.bincount((yb + off).ravel(), weights=cb.ravel(), minlength=m * n_classes).reshape(
            m, n_classes
        )
        sup = np.bincount((yb + off).ravel(), minlength=m * n_classes).reshape(m, n_classes)
        prd = np.bincount((pb + off).ravel(), minlength=m * n_classes).reshape(m, n_classes)
        den = sup + prd
        f1 = np.divide(2 * tp, den, out=np.zeros_like(tp), where=den > 0)
        present = sup > 0
        f1s[start : start + m] = (f1 * present).sum(1) / np.maximum(present.sum(1), 1)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return (
        (float(np.percentile(accs, lo)), float(np.percentile(accs, hi))),
        (float(np.percentile(f1s, lo)), float(np.percentile(f1s, hi))),
    )


def wilson_ci(correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion ``correct / n`` (``(0, 1)`` when n == 0).

    Closed form; it equals ``scipy.stats.binomtest(correct, n).proportion_ci(level, method="wilson")`` and, unlike
    a percentile bootstrap, keeps a non-zero width at 0 % and 100 % (n = 50, 50 correct: (0.929, 1.0)).
    """
    if n <= 0:
        return 0.0, 1.0
    from scipy.stats import norm

    z = float(norm.ppf((1 + level) / 2))
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
