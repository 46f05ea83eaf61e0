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
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advisor.errors import UsageError
from advisor.runtime import num_threads, resolve_device

# C values (scikit-learn convention: inverse regularisation strength per sample sum). Strong -> weak.
DEFAULT_C_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
SMALL_PROBLEM = 2e8  # n * d * classes below which the CPU probe runs single-threaded
INNER_FOLDS = 3  # inner CV folds for the choice of C (few: the inner sweep is the probe's main cost)
INNER_PATIENCE = 2  # grid points without improvement after which the inner sweep stops (see _inner_curve)
PROBE_VERSION = 2  # bump when the method changes, so cached probe results are invalidated


@dataclass
class ProbeResult:
    """Cross-validated linear-probe result.

    Attributes:
        accuracy: out-of-fold accuracy (fraction in [0, 1]) of the nested-CV predictions.
        accuracy_ci: 95 % Wilson interval of ``accuracy`` (fractions; ``accuracy_ci_method``).
        macro_f1: out-of-fold macro-averaged F1 (classes present in the labels).
        macro_f1_ci: 95 % bootstrap interval of ``macro_f1``.
        best_l2: ``lam`` of the objective above for ``best_c`` (mean-loss scaling, full-data n).
        best_c: the C chosen most often over the outer folds (ties: the stronger regularisation); the C to
            refit with. The estimate itself uses each fold's own choice (``chosen_c``).
        per_class_accuracy: out-of-fold recall per class index (None for a class with no sample).
        seconds: wall time of the whole probe (all folds and grid points).
        fold_accuracy: accuracy of each outer fold (at that fold's chosen C).
        cv_accuracy: inner-CV accuracy for each grid point, in ``c_grid`` order, averaged over the outer folds
            (the curve the choices were made on; its maximum is optimistic, the reported accuracy is not).
            None where every inner sweep had stopped early (weaker C than any fold needed).
        c_grid: the C grid swept (strong to weak).
        folds: the number of folds actually used (reduced when a class is too small).
        n_samples, n_classes, n_features: shape of the problem.
        iterations: total L-BFGS iterations over all fits.
        device, dtype: where and in what precision it ran.
        oof_pred: out-of-fold predicted class index per labelled sample, in input order.
        chosen_c: the C chosen by the inner CV for each outer fold.
        c_at_grid_edge: some fold chose the smallest or largest C of the grid (the optimum may lie outside).
        inner_folds: inner CV folds used for the choice of C (0: a result from before nested CV).
        selection: "nested-cv" (C chosen on outer-train only) or "oof-max" (old results: C chosen on the
            reported predictions, slightly optimistic).
        accuracy_ci_method: "wilson" or "bootstrap" (old results).
        notes: caveats worth showing (e.g. C at the grid edge).
    """

    accuracy: float
    accuracy_ci: tuple[float, float]
    macro_f1: float
    macro_f1_ci: tuple[float, float]
    best_l2: float
    best_c: float
    per_class_accuracy: list[float | None]
    seconds: float
    fold_accuracy: list[float] = field(default_factory=list)
    cv_accuracy: list[float | None] = field(default_factory=list)
    c_grid: list[float] = field(default_factory=list)
    folds: int = 0
    n_samples: int = 0
    n_classes: int = 0
    n_features: int = 0
    iterations: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    oof_pred: list[int] = field(default_factory=list)
    chosen_c: list[float] = field(default_factory=list)
    c_at_grid_edge: bool = False
    inner_folds: int = 0
    selection: str = "oof-max"
    accuracy_ci_method: str = "bootstrap"
    notes: list[str] = field(default_factory=list)
    protocol: str = "cv"  # "cv" | "group-cv" | "given-split"
    n_eval: int = 0  # samples the metrics are computed on (all under CV; the evaluation split otherwise)

    def to_dict(self, *, include_predictions: bool = False) -> dict[str, Any]:
        """JSON-ready dict (out-of-fold predictions only when asked: they are N long)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "oof_pred"}
        d["accuracy_ci"] = list(self.accuracy_ci)
        d["macro_f1_ci"] = list(self.macro_f1_ci)
        if include_predictions:
            d["oof_pred"] = list(self.oof_pred)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProbeResult:
        """Inverse of `to_dict` (missing optional fields take their defaults)."""
        d = dict(d)
        d["accuracy_ci"] = tuple(d["accuracy_ci"])
        d["macro_f1_ci"] = tuple(d["macro_f1_ci"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def fit_logreg(
    x,
    y,
    n_classes: int,
    lam: float,
    *,
    init: tuple[Any, Any] | None = None,
    max_iter: int = 500,
    tol: float = 1e-5,
    history_size: int = 20,
) -> tuple[Any, Any, int]:
    """Fit multinomial logistic regression by full-batch L-BFGS (strong Wolfe) on torch tensors.

    Minimises ``mean CE(x @ W.T + b, y) + lam/2 * ||W||^2`` (the bias is not penalised).

    Args:
        x: (N, D) float tensor (already standardised; dtype and device set the precision and where it runs).
        y: (N,) int64 tensor of class indices in ``[0, n_classes)``.
        n_classes: number of output classes.
        lam: L2 strength (``1 / (C * N)`` for scikit-learn's ``C``).
        init: optional ``(W, b)`` warm start (copied, not modified).
        max_iter: L-BFGS iteration cap.
        tol: stop when the largest absolute gradient entry falls below this.
        history_size: L-BFGS memory.

    Returns:
        ``(W, b, iterations)``: W is (n_classes, D), b is (n_classes,).
    """
    import torch
    import torch.nn.functional as F

    d = x.shape[1]
    if init is None:
        w = torch.zeros(n_classes, d, dtype=x.dtype, device=x.device)
        b = torch.zeros(n_classes, dtype=x.dtype, device=x.device)
    else:
        w, b = init[0].detach().clone(), init[1].detach().clone()
    w.requires_grad_(True)
    b.requires_grad_(True)
    change_tol = 1e-12 if x.dtype == torch.float64 else 1e-9
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        max_eval=int(max_iter * 1.25),
        tolerance_grad=tol,
        tolerance_change=change_tol,
        history_size=history_size,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(torch.addmm(b, x, w.T), y) + 0.5 * lam * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    state = opt.state[opt._params[0]]
    return w.detach(), b.detach(), int(state.get("n_iter", 0))


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified K-fold (train_idx, test_idx) pairs.

    Each class's samples are shuffled (seeded) and dealt round-robin to the folds, starting at a rotating offset
    so that fold sizes stay balanced across classes. A class smaller than `folds` is absent from some test folds
    (callers cap `folds` with `effective_folds`). scikit-learn is not needed at run time.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        fold_of[idx] = (np.arange(len(idx)) + offset) % folds
        offset = (offset + len(idx)) % folds
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(folds)]


def effective_folds(labels: np.ndarray, folds: int) -> int:
    """Folds actually used: at most the smallest class count (so every fold can see every class), at least 2."""
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    return int(max(2, min(folds, counts.min() if len(counts) else 2)))


def group_folds(
    labels: np.ndarray, groups: Sequence[Any] | np.ndarray, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded group K-fold: every group lies wholly in one test fold (no group on both sides of a split).

    Groups are shuffled (seeded), then dealt largest first to the fold with the fewest samples so far; the number
    of folds is capped by the number of groups. Classes are balanced only as far as the groups allow.
    """
    g = np.asarray([str(x) for x in groups])
    uniq, inv, sizes = np.unique(g, return_inverse=True, return_counts=True)
    k = int(min(folds, len(uniq)))
    if k < 2:
        raise UsageError(
            f"group-aware folds need at least 2 groups, got {len(uniq)}",
            hint="check --group-column / --group-pattern, or drop the group option",
        )
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(uniq))
    order = sorted(perm.tolist(), key=lambda i: -int(sizes[i]))  # stable: shuffled order within equal sizes
    fold_of_group = np.empty(len(uniq), dtype=np.int64)
    load = np.zeros(k, dtype=np.int64)
    for i in order:
        f = int(np.argmin(load))
        fold_of_group[i] = f
        load[f] += sizes[i]
    fold_of = fold_of_group[inv]
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]


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


def inner_seed(seed: int, fold: int) -> int:
    """Seed of the inner fold assignment for outer fold `fold` (distinct per fold, reproducible)."""
    return int(seed) * 1009 + fold + 1


def select_c(
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    grid: Sequence[float],
    n_classes: int,
    *,
    inner_folds: int,
    seed: int,
    dev: Any,
    tdtype: Any,
    max_iter: int,
    tol: float,
    groups: np.ndarray | None = None,
) -> tuple[int, np.ndarray, int, int]:
    """Choose C by stratified inner CV on (outer-train) data only (group K-fold when `groups` are given and
    there are at least 2 of them).

    Returns:
        ``(best index into grid (ties: the stronger regularisation), mean inner accuracy per grid point,
        L-BFGS iterations, inner folds used)``.
    """
    if groups is not None and len(np.unique(groups)) >= 2:
        splits = group_folds(y_tr, groups, inner_folds, seed)
        k_in = len(splits)
    else:
        k_in = effective_folds(y_tr, inner_folds)
        splits = stratified_folds(y_tr, k_in, seed)
    curve, iters = _inner_curve(x_tr, y_tr, splits, grid, n_classes, dev, tdtype, max_iter, tol)
    best = int(np.flatnonzero(curve >= np.nanmax(curve) - 1e-12)[0])
    return best, curve, iters, k_in


def _sweep(x_all, y_all, splits, grid, n_classes, dev, tdtype, max_iter, tol):
    """Fit every (fold, C) pair, strong to weak C within a fold, each warm-started from the previous one."""
    import torch

    n = len(y_all)
    k = len(splits)
    oof = np.full((len(grid), n), -1, dtype=np.int64)
    fold_acc = np.zeros((len(grid), k))
    iters = 0
    xt_all = torch.from_numpy(x_all).to(dev, tdtype)
    yt_all = torch.from_numpy(y_all).to(dev)
    for f, (tr, te) in enumerate(splits):
        tr_t = torch.from_numpy(tr).to(dev)
        te_t = torch.from_numpy(te).to(dev)
        xtr, ytr = xt_all.index_select(0, tr_t), yt_all.index_select(0, tr_t)
        mean = xtr.mean(0)
        std = xtr.std(0).clamp_min(1e-6)
        xtr = (xtr - mean) / std
        xte = (xt_all.index_select(0, te_t) - mean) / std
        init = None
        for g, c in enumerate(grid):
            lam = 1.0 / (c * len(tr))
            w, b, it = fit_logreg(xtr, ytr, n_classes, lam, init=init, max_iter=max_iter, tol=tol)
            iters += it
            init = (w, b)
            with torch.inference_mode():
                pred = torch.addmm(b, xte, w.T).argmax(1).cpu().numpy()
            oof[g, te] = pred
            fold_acc[g, f] = float((pred == y_all[te]).mean())
    return oof, fold_acc, iters


def _inner_curve(x_all, y_all, splits, grid, n_classes, dev, tdtype, max_iter, tol, patience=INNER_PATIENCE):
    """Mean inner-fold accuracy per grid point, swept strong -> weak with warm starts, stopping early.

    All folds advance one grid point at a time; once `patience` consecutive grid points fail to beat the best
    mean accuracy so far (ties go to the stronger C anyway), the weaker rest, the slowest fits, is skipped and
    its entries are NaN. The accuracy-vs-C curve of a linear probe is close to unimodal, so this rarely changes
    the choice and roughly halves the probe's time on separable features.
    """
    import torch

    xt_all = torch.from_numpy(x_all).to(dev, tdtype)
    yt_all = torch.from_numpy(y_all).to(dev)
    parts = []
    for tr, te in splits:
        tr_t, te_t = torch.from_numpy(tr).to(dev), torch.from_numpy(te).to(dev)
        xtr, ytr = xt_all.index_select(0, tr_t), yt_all.index_select(0, tr_t)
        mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
        parts.append(
            ((xtr - mean) / std, ytr, (xt_all.index_select(0, te_t) - mean) / std, y_all[te], len(tr))
        )
    curve = np.full(len(grid), np.nan)
    inits: list[Any] = [None] * len(parts)
    iters, best, since = 0, -1.0, 0
    for g, c in enumerate(grid):
        accs = []
        for f, (xtr, ytr, xte, yte, ntr) in enumerate(parts):
            w, b, it = fit_logreg(
                xtr, ytr, n_classes, 1.0 / (c * ntr), init=inits[f], max_iter=max_iter, tol=tol
            )
            iters += it
            inits[f] = (w, b)
            with torch.inference_mode():
                accs.append(float((torch.addmm(b, xte, w.T).argmax(1).cpu().numpy() == yte).mean()))
        curve[g] = float(np.mean(accs))
        if curve[g] > best + 1e-12:
            best, since = curve[g], 0
        else:
            since += 1
            if since >= patience:
                break
    return curve, iters


def _mean_curve(curves: list[np.ndarray]) -> list[float | None]:
    """Per grid point, the mean over the outer folds whose inner sweep reached it (None: none did)."""
    m = np.vstack(curves)
    out: list[float | None] = []
    for col in m.T:
        ok = col[~np.isnan(col)]
        out.append(float(ok.mean()) if len(ok) else None)
    return out


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
    if inner_folds < 2:
        raise UsageError(f"inner_folds must be at least 2, got {inner_folds}")
    grid = sorted(float(c) for c in (c_grid if c_grid is not None else DEFAULT_C_GRID))
    if t_all is not None:
        if not t_all.any() or t_all.all():
            raise UsageError(
                "the given split needs samples on both sides (a train part and an evaluation part)",
                hint="check the split folders or the split column",
            )
        splits = [(np.flatnonzero(~t_all), np.flatnonzero(t_all))]
        protocol = "given-split"
    elif g_all is not None:
        splits = group_folds(y_all, g_all, folds, seed)
        protocol = "group-cv"
    else:
        splits = stratified_folds(y_all, effective_folds(y_all, folds), seed)
        protocol = "cv"
    k = len(splits)
    dev = resolve_device(device)
    tdtype = torch.float64 if dtype == "float64" else torch.float32

    n = len(y_all)
    # Small problems on CPU run single-threaded: each L-BFGS step is dozens of tiny ops, and a second intra-op
    # thread only adds synchronisation (measured 27x slower with 2 threads on a busy 2-core machine for
    # 400 x 768 x 10). Large problems keep torch's thread count.
    small = dev.type == "cpu" and n * x_all.shape[1] * n_classes < SMALL_PROBLEM
    pred = np.full(n, -1, dtype=np.int64)
    chosen: list[int] = []
    curves: list[np.ndarray] = []
    fold_acc: list[float] = []
    iters = 0
    k_in_used = 0
    with num_threads(1 if small else None):
        for f, (tr, te) in enumerate(splits):
            best, curve, it, k_in = select_c(
                x_all[tr],
                y_all[tr],
                grid,
                n_classes,
                inner_folds=inner_folds,
                seed=inner_seed(seed, f),
                dev=dev,
                tdtype=tdtype,
                max_iter=max_iter,
                tol=tol,
                groups=None if g_all is None else g_all[tr],
            )
            iters += it
            k_in_used = max(k_in_used, k_in)
            # refit on the whole outer-train part, warm-started along the grid up to the chosen C
            oof, _, it = _sweep(
                x_all, y_all, [(tr, te)], grid[: best + 1], n_classes, dev, tdtype, max_iter, tol
            )
            iters += it
            pred[te] = oof[-1, te]
            chosen.append(best)
            curves.append(curve)
            fold_acc.append(float((pred[te] == y_all[te]).mean()))
    ev = np.sort(np.concatenate([te for _, te in splits]))  # the evaluated samples (all of them under CV)
    y_ev, p_ev = y_all[ev], pred[ev]
    correct = int((p_ev == y_ev).sum())
    acc = correct / len(ev)
    f1 = macro_f1_score(y_ev, p_ev, n_classes)
    _, f1_ci = bootstrap_ci(y_ev, p_ev, n_classes, n_boot=n_boot, seed=seed)
    acc_ci = wilson_ci(correct, len(ev))
    per_class: list[float | None] = []
    for c in range(n_classes):
        m = y_ev == c
        per_class.append(float((p_ev[m] == c).mean()) if m.any() else None)
    votes = np.bincount(np.asarray(chosen), minlength=len(grid))
    best_idx = int(np.argmax(votes))  # first maximum = the stronger regularisation on a tie
    edge = len(grid) > 1 and any(b in (0, len(grid) - 1) for b in chosen)
    notes: list[str] = []
    if edge:
        at = sorted({grid[b] for b in chosen if b in (0, len(grid) - 1)})
        notes.append(
            f"the inner CV chose C at the edge of the grid ({', '.join(f'{c:g}' for c in at)} in "
            f"{sum(b in (0, len(grid) - 1) for b in chosen)} of {k} folds): the best regularisation may lie "
            "outside the grid (the accuracy is still an honest estimate for this grid)"
        )
    return ProbeResult(
        accuracy=acc,
        accuracy_ci=acc_ci,
        macro_f1=f1,
        macro_f1_ci=f1_ci,
        best_l2=1.0 / (grid[best_idx] * n),
        best_c=grid[best_idx],
        per_class_accuracy=per_class,
        seconds=time.perf_counter() - t0,
        fold_accuracy=fold_acc,
        cv_accuracy=_mean_curve(curves),
        c_grid=grid,
        folds=k,
        n_samples=n,
        n_classes=n_classes,
        n_features=int(x_all.shape[1]),
        iterations=iters,
        device=str(dev),
        dtype=dtype,
        oof_pred=[int(p) for p in pred],
        chosen_c=[grid[b] for b in chosen],
        c_at_grid_edge=bool(edge),
        inner_folds=k_in_used,
        selection="nested-cv",
        accuracy_ci_method="wilson",
        notes=notes,
        protocol=protocol,
        n_eval=len(ev),
    )
