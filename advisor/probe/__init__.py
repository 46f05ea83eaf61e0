"""The linear probe: multinomial logistic regression on frozen features, L2 chosen by nested stratified CV.

Objective (the same as scikit-learn's ``LogisticRegression(C=C)`` with the L2 penalty, intercept unpenalised)::

    mean_i CE(W x_i + b, y_i) + (lam / 2) * ||W||^2,    lam = 1 / (C * n_train)

solved full-batch with ``torch.optim.LBFGS`` (strong-Wolfe line search) on standardised features (train-fold
mean/std). The evaluation is nested: for each outer fold, C is chosen by an inner stratified CV on the outer-train
part only (the grid swept from strong to weak, each fit warm-started from the previous solution, so the weak end,
the slow one, starts close to its optimum); the model is then fitted on the whole outer-train part at that C and
predicts the outer-test part, which the selection never saw. The reported accuracy and macro-F1 are those of
these out-of-fold predictions: accuracy with a 95 % Wilson interval (non-zero width at 0 % and 100 %), macro-F1
with a percentile bootstrap over samples. The chosen C per fold is recorded, and flagged when it lies on the
grid's edge (the optimum may lie outside the grid).

Layout: `result` (the `ProbeResult` record), `folds` (fold assignments), `stats` (F1 and intervals), `fit`
(the L-BFGS solver and the warm-started sweeps); this module runs the nested CV and re-exports them all.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from advisor.errors import UsageError
from advisor.probe.fit import INNER_PATIENCE, Solver, _mean_curve, _sweep, fit_logreg, select_c
from advisor.probe.fit import _inner_curve as _inner_curve
from advisor.probe.folds import effective_folds, group_folds, inner_seed, stratified_folds
from advisor.probe.result import PROBE_VERSION, ProbeResult
from advisor.probe.stats import bootstrap_ci, macro_f1_score, wilson_ci
from advisor.runtime import num_threads, resolve_device

# C values (scikit-learn convention: inverse regularisation strength per sample sum). Strong -> weak.
DEFAULT_C_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
SMALL_PROBLEM = 2e8  # n * d * classes below which the CPU probe runs single-threaded
INNER_FOLDS = 3  # inner CV folds for the choice of C (few: the inner sweep is the probe's main cost)

__all__ = [
    "DEFAULT_C_GRID",
    "INNER_FOLDS",
    "INNER_PATIENCE",
    "PROBE_VERSION",
    "SMALL_PROBLEM",
    "Solver",
    "ProbeResult",
    "bootstrap_ci",
    "effective_folds",
    "fit_logreg",
    "group_folds",
    "inner_seed",
    "linear_probe",
    "macro_f1_score",
    "select_c",
    "stratified_folds",
    "wilson_ci",
]


def linear_probe(
    features,
    labels,
    *,
    folds: int = 5,
    c_grid: Sequence[float] | None = None,
    device: str = "cpu",
    seed: int = 0,
    dtype: str = "float32",
    max_iter: int = 100,
    tol: float = 1e-4,
    n_boot: int = 500,
    inner_folds: int = INNER_FOLDS,
    groups: Sequence[Any] | None = None,
    test_mask: Sequence[bool] | np.ndarray | None = None,
) -> ProbeResult:
    """Nested cross-validated linear probe on frozen features.

    With `test_mask` (a given split), the probe is fitted on the other samples only (C by inner CV on them)
    and scored on the masked ones: ``protocol = "given-split"``. With `groups`, the outer and inner folds are
    group K-folds (a group is never on both sides): ``protocol = "group-cv"``. Otherwise stratified K-fold CV:
    ``protocol = "cv"``.

    For each of ``folds`` stratified outer folds: choose C by an ``inner_folds`` stratified CV on the outer-train
    part only (`select_c`: standardise with each inner-train part's statistics, sweep the C grid from strong to
    weak regularisation, warm-starting each fit from the previous one; the best mean inner accuracy wins, ties
    to the stronger regularisation); then fit on the whole outer-train part at that C (warm-started along the
    grid up to it) and predict the outer-test part. Metrics are computed on these out-of-fold predictions, so the
    choice of C never saw the samples it is scored on.

    Args:
        features: (N, D) array-like of frozen features.
        labels: (N,) int class indices (negative = unlabelled, dropped).
        folds: number of outer CV folds (reduced to the smallest class count, at least 2).
        c_grid: C values (scikit-learn convention); sorted strong -> weak. Default `DEFAULT_C_GRID`.
        device: "cpu", "cuda", "mps" or "auto".
        seed: fold assignment and bootstrap seed.
        dtype: "float32" (fast) or "float64".
        max_iter: L-BFGS iteration cap per fit (scikit-learn's default too; the weak end of the grid on separable
            data would otherwise iterate long for no accuracy change).
        tol: gradient tolerance (max abs entry of the mean-loss gradient), as scikit-learn's ``tol``.
        n_boot: bootstrap resamples for the macro-F1 interval.
        inner_folds: inner CV folds for the choice of C (capped by the outer-train class counts, at least 2).
        groups: (N,) group of each sample (e.g. the speaker), or None.
        test_mask: (N,) True for the samples of the given evaluation split, or None.

    Returns:
        A `ProbeResult`.

    Raises:
        UsageError: fewer than 2 classes, or a class with a single sample only, or mismatched shapes.
    """
    import torch

    t0 = time.perf_counter()
    x_all, y_all, g_all, t_all, n_classes = _labelled_inputs(features, labels, groups, test_mask, dtype)
    if inner_folds < 2:
        raise UsageError(f"inner_folds must be at least 2, got {inner_folds}")
    grid = sorted(float(c) for c in (c_grid if c_grid is not None else DEFAULT_C_GRID))
    splits, protocol = _outer_splits(y_all, g_all, t_all, folds, seed)
    solver = Solver(
        resolve_device(device), torch.float64 if dtype == "float64" else torch.float32, max_iter, tol
    )

    n = len(y_all)
    pred, chosen, curves, fold_acc, iters, k_in_used = _outer_folds(
        x_all,
        y_all,
        g_all,
        splits,
        grid,
        n_classes,
        inner_folds=inner_folds,
        seed=seed,
        solver=solver,
    )
    ev = np.sort(np.concatenate([te for _, te in splits]))  # the evaluated samples (all of them under CV)
    return ProbeResult(
        **_oof_metrics(y_all[ev], pred[ev], n_classes, n_boot, seed),
        **_selection(grid, chosen, curves, n),
        seconds=time.perf_counter() - t0,
        fold_accuracy=fold_acc,
        c_grid=grid,
        folds=len(splits),
        n_samples=n,
        n_classes=n_classes,
        n_features=int(x_all.shape[1]),
        iterations=iters,
        device=str(solver.dev),
        dtype=dtype,
        oof_pred=[int(p) for p in pred],
        inner_folds=k_in_used,
        selection="nested-cv",
        accuracy_ci_method="wilson",
        protocol=protocol,
        n_eval=len(ev),
    )


def _outer_folds(
    x_all: np.ndarray,
    y_all: np.ndarray,
    g_all: np.ndarray | None,
    splits: list[tuple[np.ndarray, np.ndarray]],
    grid: list[float],
    n_classes: int,
    *,
    inner_folds: int,
    seed: int,
    solver: Solver,
) -> tuple[np.ndarray, list[int], list[np.ndarray], list[float], int, int]:
    """Per outer fold: C by inner CV on the outer-train part (`select_c`), refit there, predict the outer-test part.

    Returns:
        ``(out-of-fold predictions (-1 where never tested), chosen grid index per fold, inner curve per fold,
        accuracy per fold, L-BFGS iterations, inner folds used)``.
    """
    n = len(y_all)
    pred = np.full(n, -1, dtype=np.int64)
    chosen: list[int] = []
    curves: list[np.ndarray] = []
    fold_acc: list[float] = []
    iters = 0
    k_in_used = 0
    # Small problems on CPU run single-threaded: each L-BFGS step is dozens of tiny ops, and a second intra-op
    # thread only adds synchronisation (measured 27x slower with 2 threads on a busy 2-core machine for
    # 400 x 768 x 10). Large problems keep torch's thread count.
    small = solver.dev.type == "cpu" and n * x_all.shape[1] * n_classes < SMALL_PROBLEM
    with num_threads(1 if small else None):
        for f, (tr, te) in enumerate(splits):
            best, curve, it, k_in = select_c(
                x_all[tr],
                y_all[tr],
                grid,
                n_classes,
                inner_folds=inner_folds,
                seed=inner_seed(seed, f),
                solver=solver,
                groups=None if g_all is None else g_all[tr],
            )
            iters += it
            k_in_used = max(k_in_used, k_in)
            # refit on the whole outer-train part, warm-started along the grid up to the chosen C
            oof, _, it = _sweep(x_all, y_all, [(tr, te)], grid[: best + 1], n_classes, *solver)
            iters += it
            pred[te] = oof[-1, te]
            chosen.append(best)
            curves.append(curve)
            fold_acc.append(float((pred[te] == y_all[te]).mean()))
    return pred, chosen, curves, fold_acc, iters, k_in_used


def _labelled_inputs(
    features, labels, groups: Sequence[Any] | None, test_mask: Sequence[bool] | np.ndarray | None, dtype: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, int]:
    """The labelled rows as arrays: ``(x, y, groups or None, test_mask or None, n_classes)``.

    Raises:
        UsageError: mismatched shapes, fewer than 2 classes, or a class with a single sample only.
    """
    x_all = np.asarray(features, dtype=np.float64 if dtype == "float64" else np.float32)
    y_all = np.asarray(labels).astype(np.int64)
    if x_all.ndim != 2 or len(x_all) != len(y_all):
        raise UsageError(f"probe needs features (N, D) and labels (N,), got {x_all.shape} and {y_all.shape}")
    keep = y_all >= 0
    g_all = None if groups is None else np.asarray([str(v) for v in groups])[keep]
    t_all = None if test_mask is None else np.asarray(test_mask, dtype=bool)[keep]
    for name, arr in (("groups", g_all), ("test_mask", t_all)):
        if arr is not None and len(arr) != int(keep.sum()):
            raise UsageError(f"probe: {name} must have one entry per sample")
    x_all, y_all = x_all[keep], y_all[keep]
    n_classes = int(y_all.max()) + 1 if len(y_all) else 0
    counts = np.bincount(y_all, minlength=n_classes)
    if (counts > 0).sum() < 2:
        raise UsageError("the linear probe needs labelled samples of at least 2 classes")
    if counts[counts > 0].min() < 2:
        raise UsageError(
            "the linear probe needs at least 2 samples in every class",
            hint="drop the singleton classes or add samples",
        )
    return x_all, y_all, g_all, t_all, n_classes


def _outer_splits(
    y_all: np.ndarray, g_all: np.ndarray | None, t_all: np.ndarray | None, folds: int, seed: int
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """The outer (train_idx, test_idx) splits and the protocol name: given split, group K-fold or stratified."""
    if t_all is not None:
        if not t_all.any() or t_all.all():
            raise UsageError(
                "the given split needs samples on both sides (a train part and an evaluation part)",
                hint="check the split folders or the split column",
            )
        return [(np.flatnonzero(~t_all), np.flatnonzero(t_all))], "given-split"
    if g_all is not None:
        return group_folds(y_all, g_all, folds, seed), "group-cv"
    return stratified_folds(y_all, effective_folds(y_all, folds), seed), "cv"


def _oof_metrics(
    y_ev: np.ndarray, p_ev: np.ndarray, n_classes: int, n_boot: int, seed: int
) -> dict[str, Any]:
    """Accuracy (Wilson interval), macro-F1 (bootstrap interval) and per-class recall of the evaluated samples."""
    correct = int((p_ev == y_ev).sum())
    _, f1_ci = bootstrap_ci(y_ev, p_ev, n_classes, n_boot=n_boot, seed=seed)
    per_class: list[float | None] = []
    for c in range(n_classes):
        m = y_ev == c
        per_class.append(float((p_ev[m] == c).mean()) if m.any() else None)
    return {
        "accuracy": correct / len(y_ev),
        "accuracy_ci": wilson_ci(correct, len(y_ev)),
        "macro_f1": macro_f1_score(y_ev, p_ev, n_classes),
        "macro_f1_ci": f1_ci,
        "per_class_accuracy": per_class,
    }


def _selection(grid: list[float], chosen: list[int], curves: list[np.ndarray], n: int) -> dict[str, Any]:
    """The C-selection fields of a `ProbeResult`: the majority C (ties: the stronger), per-fold choices, edge flag."""
    votes = np.bincount(np.asarray(chosen), minlength=len(grid))
    best_idx = int(np.argmax(votes))  # first maximum = the stronger regularisation on a tie
    edge = len(grid) > 1 and any(b in (0, len(grid) - 1) for b in chosen)
    return {
        "best_l2": 1.0 / (grid[best_idx] * n),
        "best_c": grid[best_idx],
        "cv_accuracy": _mean_curve(curves),
        "chosen_c": [grid[b] for b in chosen],
        "c_at_grid_edge": bool(edge),
        "notes": _edge_notes(grid, chosen, len(chosen)) if edge else [],
    }


def _edge_notes(grid: list[float], chosen: list[int], k: int) -> list[str]:
    """The caveat shown when some fold chose the smallest or largest C of the grid."""
    at = sorted({grid[b] for b in chosen if b in (0, len(grid) - 1)})
    return [
        f"the inner CV chose C at the edge of the grid ({', '.join(f'{c:g}' for c in at)} in "
        f"{sum(b in (0, len(grid) - 1) for b in chosen)} of {k} folds): the best regularisation may lie "
        "outside the grid (the accuracy is still an honest estimate for this grid)"
    ]
