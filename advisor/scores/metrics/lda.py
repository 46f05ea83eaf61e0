"""LDA-based scores: SFDA (in-sample and cross-fitted), ETran's LDA and energy terms and their fusion."""

from __future__ import annotations

import math

import numpy as np

from advisor.errors import ScoreError
from advisor.scores.metrics._common import _need_classes
from advisor.scores.prepare import Prepared, _torch, finite_or_error
from advisor.scores.registry import register_scorer


# --------------------------------------------------------------------------------------------------- LDA / SFDA
def _power_top_eig(a, iters: int = 3, *, matvec=None, start=None) -> float:
    """The reference's 3-step power estimate of the largest eigenvalue (SFDA `iterative_A`), started at row sums.
    `matvec`/`start` give the operator implicitly (dual form) instead of the matrix `a`."""
    if matvec is None:
        matvec = a.__matmul__
        start = a.sum(1)
    x = start
    y = x
    for _ in range(iters):
        t = matvec(x)
        nt = float(t.norm())
        if nt == 0:
            return 0.0
        y = t / nt
        t = matvec(y)
        nt = float(t.norm())
        if nt == 0:
            return 0.0
        x = t / nt
    return float(x @ matvec(y))


def _lda_fit(gram, sums, counts, shrinkage: float | None):
    """Fit the shrinkage LDA of SFDA's `_solve_eigen` from sufficient statistics.

    With all D generalized eigenvectors V of (S_b, S_w') kept, V V^T = S_w'^-1, so the reference's coef
    `means V V^T` is `means S_w'^-1`; we solve that system directly (Cholesky) instead of the eigenproblem.

    Returns:
        (coef (C, D), intercept (C,), shrinkage); classes with no training sample get intercept -inf.
    """
    torch = _torch()
    d = gram.shape[0]
    present = counts > 0
    n = float(counts.sum())
    cnt = counts.clamp_min(1)
    means = sums / cnt[:, None]
    # sum_k pi_k cov_k (bias=1); symmetric by construction (Cholesky reads one triangle), built in place
    sw = torch.addmm(gram, means.T * counts[None, :], means, alpha=-1.0).div_(n)
    if shrinkage is None:
        lam_max = _power_top_eig(sw)
        shrinkage = max(math.exp(min(-5.0 * lam_max, 700.0)), 1e-10)
    mu = float(torch.diagonal(sw).sum()) / d
    a = sw.mul_(1.0 - shrinkage)
    a.diagonal().add_(shrinkage * mu)
    L, info = torch.linalg.cholesky_ex(a)
    if int(info) == 0:
        coef = torch.cholesky_solve(means.T, L).T
    else:  # singular even after shrinkage (e.g. all features constant): pseudo-inverse
        coef = (torch.linalg.pinv(a, hermitian=True) @ means.T).T
    prior = counts / n
    intercept = -0.5 * (means * coef).sum(1) + torch.log(prior.clamp_min(1e-300))
    intercept = torch.where(present, intercept, torch.full_like(intercept, -math.inf))
    return coef, intercept, shrinkage


def _lda_fit_dual(xs, ys, c: int, shrinkage: float | None):
    """`_lda_fit` for D > n training rows, in the n x n dual (Woodbury): same coef and intercept, without any
    D x D matrix. S_w = X_w^T X_w / n with X_w the class-centred rows; A = (1-s) S_w + s mu I."""
    torch = _torch()
    n, d = xs.shape
    counts = torch.bincount(ys, minlength=c).to(torch.float64)
    sums = torch.zeros(c, d, dtype=torch.float64, device=xs.device).index_add_(0, ys, xs)
    means = sums / counts.clamp_min(1)[:, None]
    xw = xs - means[ys]
    if shrinkage is None:
        lam_max = _power_top_eig(None, matvec=lambda v: xw.T @ (xw @ v) / n, start=xw.T @ xw.sum(1) / n)
        shrinkage = max(math.exp(min(-5.0 * lam_max, 700.0)), 1e-10)
    mu = float((xw * xw).sum()) / n / d
    if mu == 0:  # no within-class spread at all: A = 0, whose pseudo-inverse is 0
        coef = torch.zeros_like(means)
    else:
        cc, b = shrinkage * mu, (1.0 - shrinkage) / n
        inner = cc * torch.eye(n, dtype=torch.float64, device=xs.device) + b * (xw @ xw.T)
        L, info = torch.linalg.cholesky_ex(inner)
        rhs = xw @ means.T
        t = torch.cholesky_solve(rhs, L) if int(info) == 0 else torch.linalg.pinv(inner, hermitian=True) @ rhs
        coef = ((means.T - b * (xw.T @ t)) / cc).T
    present = counts > 0
    prior = counts / float(n)
    intercept = -0.5 * (means * coef).sum(1) + torch.log(prior.clamp_min(1e-300))
    intercept = torch.where(present, intercept, torch.full_like(intercept, -math.inf))
    return coef, intercept, shrinkage, sums, counts


def _lda_probs(x, coef, intercept):
    torch = _torch()
    return torch.softmax(x @ coef.T + intercept[None, :], dim=1)


def _stage_stats(prep: Prepared, x, idx, c: int):
    torch = _torch()
    xs = x[idx]
    ys = prep.y[idx]
    sums = torch.zeros(c, x.shape[1], dtype=torch.float64, device=x.device).index_add_(0, ys, xs)
    counts = torch.bincount(ys, minlength=c).to(torch.float64)
    return xs.T @ xs, sums, counts


def _confmix(prep: Prepared, xx, idx, prob, other):
    torch = _torch()
    soft = torch.softmax(prob, dim=1)
    py = soft[torch.arange(len(idx), device=prep.device), prep.y[idx]][:, None]
    return py * xx + (1 - py) * other[prep.y[idx]]


def _sfda_run(prep: Prepared, folds: int) -> dict:
    """Stage-1 LDA posteriors (for ETran-LDA) and SFDA's stage-2 posteriors, in-sample (folds=0) or cross-fitted."""

    def f():
        torch = _torch()
        n, c = prep.N, prep.C
        p1 = torch.zeros(n, dtype=torch.float64, device=prep.device)
        p2 = torch.zeros_like(p1)
        if folds <= 1:
            splits = [(torch.arange(n, device=prep.device), torch.arange(n, device=prep.device))]
        else:
            fid = prep.stratified_folds(folds)
            splits = [
                (torch.nonzero(fid != k).flatten(), torch.nonzero(fid == k).flatten()) for k in range(folds)
            ]
        x = prep.X
        use_gram = prep.D <= prep.N
        te_stats = []
        if folds > 1 and use_gram:
            # held-out statistics per fold; the last fold's come from the totals, so the folds together cost one
            # (1 - 1/k) N x D^2 product, and each training set's statistics are totals minus its held-out fold
            for _, te in splits[:-1]:
                te_stats.append(_stage_stats(prep, x, te, c))
            te_stats.append(
                (
                    prep.gram - sum(t[0] for t in te_stats),
                    prep.class_sums - sum(t[1] for t in te_stats),
                    prep.counts - sum(t[2] for t in te_stats),
                )
            )
        for fold, (tr, te) in enumerate(splits):
            dual = not use_gram and prep.D > len(tr)
            if dual:
                coef, icpt, s, sums, counts = _lda_fit_dual(x[tr], prep.y[tr], c, None)
            else:
                if folds <= 1 and use_gram:
                    g, sums, counts = prep.gram, prep.class_sums, prep.counts
                elif use_gram:
                    gte, ste, cte = te_stats[fold]
                    g, sums, counts = prep.gram - gte, prep.class_sums - ste, prep.counts - cte
                else:
                    g, sums, counts = _stage_stats(prep, x, tr, c)
                coef, icpt, s = _lda_fit(g, sums, counts, None)
            prob_tr = _lda_probs(x[tr], coef, icpt)
            prob_te = prob_tr if folds <= 1 else _lda_probs(x[te], coef, icpt)
            p1[te] = prob_te[torch.arange(len(te), device=prep.device), prep.y[te]]
            # ConfMix (SFDA): soften the posterior with a second softmax, then move each sample towards the mean
            # of the *other* classes' means in proportion to its confidence of being misclassified.
            present = counts > 0
            means = sums / counts.clamp_min(1)[:, None]
            npres = int(present.sum())
            if npres < 2:
                raise ScoreError("a training fold holds fewer than 2 classes; use fewer folds")
            other = ((means * present[:, None]).sum(0)[None, :] - means) / (npres - 1)

            xtr2 = _confmix(prep, x[tr], tr, prob_tr, other)
            # held-out samples are scored as they are: ConfMix is a training-time perturbation, and mixing a held-out
            # sample with its (low) held-out confidence would push it onto the other classes' mean.
            xte2 = xtr2 if folds <= 1 else x[te]
            if dual:
                coef2, icpt2, *_ = _lda_fit_dual(xtr2, prep.y[tr], c, s)
            else:
                sums2 = torch.zeros_like(sums).index_add_(0, prep.y[tr], xtr2)
                coef2, icpt2, _ = _lda_fit(xtr2.T @ xtr2, sums2, counts, s)
            prob2 = _lda_probs(xte2, coef2, icpt2)
            p2[te] = prob2[torch.arange(len(te), device=prep.device), prep.y[te]]
        return {"lda": p1, "sfda": p2}

    return prep.cached(("sfda", folds), f)


@register_scorer("sfda", higher_is_better=True, needs=("features", "labels"))
def sfda(prep: Prepared, *, folds: int = 0) -> float:
    """SFDA (published): self-challenging Fisher discriminant score, fitted and evaluated on the same data.

    Shao et al. (ECCV 2022), TencentARC/SFDA `SFDA_Score`: equals the authors' in-sample value. Saturates near 1
    when samples per class are far fewer than D; `sfda_cv` is the cross-fitted variant the ranking can use.
    """
    return sfda_cv(prep, folds=folds)


@register_scorer("sfda_cv", higher_is_better=True, needs=("features", "labels"))
def sfda_cv(prep: Prepared, *, folds: int = 2) -> float:
    """SFDA variant, cross-fitted on 2 folds (both stages fitted on one half, scored on the other).

    Shao et al., "Not All Models Are Equal: Predicting Model Transferability in a Self-challenging Fisher Space"
    (ECCV 2022); reference TencentARC/SFDA `SFDA_Score`: shrinkage LDA with adaptive shrinkage
    max(exp(-5 lambda_max(S_w)), 1e-10) (3-step power estimate), ConfMix towards the other classes' mean, a second
    LDA with the same shrinkage, score = mean p(y_i | x_i) (no log, as in the reference).

    Cross-fitting: the default `folds=2` fits both LDA stages on one half of every class and scores the other
    half (both directions). In-sample posteriors saturate at 1 once samples per class are far fewer than D
    (S_w nearly singular, shrinkage ~1e-10), which removes all ranking signal in the common regime of a few
    dozen images per class and D = 768-2048; two folds keep the cost at about one extra N x D^2 pass. Held-out
    samples are scored on their raw features by the stage-2 model (ConfMix perturbs only the training half).
    `folds=0` reproduces the reference's in-sample value exactly.
    """
    _need_classes(prep, 2)
    return finite_or_error(_sfda_run(prep, folds)["sfda"].mean(), "SFDA")


# --------------------------------------------------------------------------------------------------- ETran
@register_scorer("etran_lda", higher_is_better=True, needs=("features", "labels"))
def etran_lda(prep: Prepared, *, folds: int = 2) -> float:
    """ETran's LDA component: mean posterior of the true class under a shrinkage LDA classifier.

    Gholami et al., "ETran: Energy-Based Transferability Estimation" (ICCV 2023). Follows the paper (LDA with
    SFDA's adaptive shrinkage, score = mean p(y_i | x_i)). Deviation: mgholamikn/ETran `LDA._solve_eigen` passes
    the non-symmetric inv(S_w) S_b to `np.linalg.eigh`, which reads only one triangle and returns an orthonormal
    basis, so its coef collapses to the raw class means (a Euclidean nearest-mean softmax); we use the intended
    S_w^-1. Cross-fitted with `folds=2` by default for the same reason as `sfda` (shares its first stage);
    `folds=0` is the in-sample score.
    """
    _need_classes(prep, 2)
    return finite_or_error(_sfda_run(prep, folds)["lda"].mean(), "ETran-LDA")


@register_scorer("etran_energy", higher_is_better=True, needs=("features",))
def etran_energy(prep: Prepared, *, fraction: float = 0.005) -> float:
    """ETran's energy component: mean of logsumexp over feature dimensions for the lowest-energy samples.

    Gholami et al. (ICCV 2023); reference mgholamikn/ETran `Energy_Score(features, 0.5, 'bot')`: the features are
    treated as logits, the per-sample score is logsumexp(f(x)) and the mean is taken over the bottom 0.5 %
    (`fraction=0.005`, at least one sample). Label-free. Fuse components across candidates with `etran_fuse`.
    """
    torch = _torch()
    e = torch.logsumexp(prep.X, dim=1)
    k = max(1, int(math.floor(fraction * prep.N + 1e-9)))
    return finite_or_error(torch.sort(e).values[:k].mean(), "ETran energy")


def etran_fuse(components: dict[str, list[float]], weights: dict[str, float] | None = None) -> np.ndarray:
    """Fuse ETran component scores across candidate models into one score per candidate.

    Each component (e.g. "energy", "lda", and optionally "svd") is min-max normalised across the candidates (a
    constant component contributes 0) and the weighted sum is returned, as in ETran's final score
    S = S_en + S_lda (+ S_svd for detection); default weights are 1.

    Args:
        components: component name -> per-candidate scores (same length for all components).
        weights: optional component name -> weight.

    Returns:
        (M,) fused score per candidate (higher is better).
    """
    if not components:
        raise ScoreError("etran_fuse needs at least one component")
    lens = {len(v) for v in components.values()}
    if len(lens) != 1:
        raise ScoreError(f"all components need one score per candidate; got lengths {sorted(lens)}")
    out = np.zeros(lens.pop(), dtype=np.float64)
    for name, vals in components.items():
        v = np.asarray(vals, dtype=np.float64)
        if not np.isfinite(v).all():
            raise ScoreError(f"component {name!r} has non-finite scores")
        span = v.max() - v.min()
        norm = (v - v.min()) / span if span > 0 else np.zeros_like(v)
        out += (weights or {}).get(name, 1.0) * norm
    return out
