"""The probe's solver: L-BFGS multinomial logistic regression and the warm-started sweeps over the C grid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from advisor.probe.folds import effective_folds, group_folds, stratified_folds

INNER_PATIENCE = 2  # grid points without improvement after which the inner sweep stops (see _inner_curve)


class Solver(NamedTuple):
    """The L-BFGS settings every fit of one probe shares, in the positional order of `_sweep`/`_inner_curve`."""

    dev: Any  # torch.device
    tdtype: Any  # torch dtype
    max_iter: int
    tol: float


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


def select_c(
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    grid: Sequence[float],
    n_classes: int,
    *,
    inner_folds: int,
    seed: int,
    solver: Solver,
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
    curve, iters = _inner_curve(x_tr, y_tr, splits, grid, n_classes, *solver)
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
