"""The transferability metrics: each a registered scorer `fn(prep: Prepared, **kwargs) -> float`.

Conventions: inputs are float64 tensors from `Prepared`; all work is vectorised in torch on `prep.device`; each
docstring names the paper and the reference code it was checked against, and every deliberate deviation.
"""

from __future__ import annotations

import math

import numpy as np

from advisor.errors import ScoreError
from advisor.scores.prepare import Prepared, _torch, finite_or_error, rank_tol
from advisor.scores.registry import register_scorer


def _need_classes(prep: Prepared, k: int = 2) -> None:
    if prep.C < k:
        raise ScoreError(f"needs at least {k} classes, got {prep.C}")


def _need_probs(prep: Prepared):
    if prep.P is None:
        raise ScoreError("needs source-model predictions: pass logits or probs")
    return prep.P


# --------------------------------------------------------------------------------------------------- LogME
def logme_details(prep: Prepared, *, max_iter: int = 11, tol: float = 1e-3, eps: float = 1e-5) -> dict:
    """Batched LogME fixed point over all classes at once; returns per-class alpha, beta and evidence.

    The iteration is that of You et al., "Ranking and Tuning Pre-trained Models" (JMLR 2022) as coded in
    thuml/LogME `LogME._fit_fixed_point`: start alpha = beta = 1, at t = alpha/beta compute gamma, |m|^2 and the
    residual, update alpha = gamma/(|m|^2+eps), beta = (N-gamma)/(res+eps), stop when |t'-t|/t <= tol or after
    `max_iter` steps; the evidence is evaluated with the last alpha, beta and the last |m|^2, residual (as the
    reference does). Deviation: thuml sums log(alpha + beta*sigma) over the k = min(N, D) non-zero singular values
    only and so drops -(D-k)/2 log(alpha) from log|A| when the rank k < D (always when N < D); we keep it, so the
    value is the exact log evidence of Bayesian linear regression (checked against an N x N log-determinant in
    the tests). For N >= D with full-rank features both agree.
    """
    torch = _torch()
    sigma, x2 = prep.uncentered_eig  # (k,), (k, C)
    n, d = prep.N, prep.D
    res_x2 = (prep.counts - x2.sum(0)).clamp_min(0.0)  # |y|^2 - |U^T y|^2 (one-hot: |y|^2 = n_c)
    c = prep.C
    alpha = torch.ones(c, dtype=torch.float64, device=prep.device)
    beta = torch.ones_like(alpha)
    m2 = torch.zeros_like(alpha)
    res2 = torch.zeros_like(alpha)
    active = torch.ones(c, dtype=torch.bool, device=prep.device)
    s = sigma[:, None]
    for _ in range(max_iter):
        t = alpha / beta
        gamma = (s / (s + t)).sum(0)
        m2_new = (s * x2 / (t + s) ** 2).sum(0)
        res2_new = (x2 / (1 + s / t) ** 2).sum(0) + res_x2
        a_new = gamma / (m2_new + eps)
        b_new = (n - gamma) / (res2_new + eps)
        alpha = torch.where(active, a_new, alpha)
        beta = torch.where(active, b_new, beta)
        m2 = torch.where(active, m2_new, m2)
        res2 = torch.where(active, res2_new, res2)
        conv = (a_new / b_new - t).abs() / t <= tol
        active = active & ~conv
        if not bool(active.any()):
            break
    k = sigma.numel()
    logdet = torch.log(alpha[None, :] + beta[None, :] * s).sum(0) + (d - k) * torch.log(alpha)
    ev = (
        d / 2.0 * torch.log(alpha)
        + n / 2.0 * torch.log(beta)
        - 0.5 * logdet
        - beta / 2.0 * res2
        - alpha / 2.0 * m2
        - n / 2.0 * math.log(2 * math.pi)
    ) / n
    return {"alpha": alpha, "beta": beta, "evidence": ev, "rank": k}


@register_scorer("logme", higher_is_better=True, needs=("features", "labels"))
def logme(prep: Prepared, *, max_iter: int = 11, tol: float = 1e-3, eps: float = 1e-5) -> float:
    """LogME: mean over classes of the maximum log evidence of a Bayesian linear model on one-hot targets.

    You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer Learning" (ICML 2021); fixed-point
    solver and defaults (11 iterations, tol 1e-3, eps 1e-5) of thuml/LogME. Exact evidence when N < D (see
    `logme_details`). One eigendecomposition of X^T X (or X X^T when N < D) serves every class.
    """
    _need_classes(prep, 2)
    return finite_or_error(
        logme_details(prep, max_iter=max_iter, tol=tol, eps=eps)["evidence"].mean(), "LogME"
    )


# --------------------------------------------------------------------------------------------------- LEEP family
def _leep_from_probs(theta, y, c: int) -> float:
    torch = _torch()
    n = theta.shape[0]
    onehot = torch.nn.functional.one_hot(y, c).to(theta.dtype)
    joint = onehot.T @ theta / n  # P(y, z)
    pz = joint.sum(0, keepdim=True)
    cond = torch.where(pz > 0, joint / pz.clamp_min(1e-300), torch.zeros_like(joint))  # P(y | z)
    eep = (theta * cond[y]).sum(1)  # sum_z P(y_i | z) theta_z(x_i)
    return float(torch.log(eep.clamp_min(1e-300)).mean())


@register_scorer("leep", higher_is_better=True, needs=("probs", "labels"))
def leep(prep: Prepared) -> float:
    """LEEP: average log of the expected empirical prediction of the target label through the source head.

    Nguyen et al., "LEEP: A New Measure to Evaluate Transferability of Learned Representations" (ICML 2020);
    matches TLlib `tllib/ranking/leep.py` and google-research stable_transfer `leep.py` (the SFDA/ETran repos drop
    the log; we keep it as in the paper). Logits are soft-maxed in float64.
    """
    return finite_or_error(_leep_from_probs(_need_probs(prep), prep.y, prep.C), "LEEP")


@register_scorer("nce", higher_is_better=True, needs=("probs", "labels"))
def nce(prep: Prepared) -> float:
    """NCE: negative conditional entropy -H(Y | Z) of target labels given the source model's hard predictions.

    Tran et al., "Transferability and Hardness of Supervised Classification Tasks" (ICCV 2019); matches TLlib
    `tllib/ranking/nce.py` (Z = argmax of the source probabilities; source classes never predicted are skipped).
    """
    torch = _torch()
    p = _need_probs(prep)
    z = p.argmax(1)
    nz = p.shape[1]
    joint = torch.zeros(prep.C * nz, dtype=torch.float64, device=prep.device)
    joint.index_add_(0, prep.y * nz + z, torch.ones_like(z, dtype=torch.float64))
    joint = joint.view(prep.C, nz) / prep.N
    pz = joint.sum(0, keepdim=True)
    mask = joint > 0
    cond = joint[mask] / pz.expand_as(joint)[mask]
    return finite_or_error((joint[mask] * torch.log(cond)).sum(), "NCE")


def gmm_diag_em(
    z,
    means,
    variances,
    weights,
    *,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
) -> tuple:
    """EM for a diagonal-covariance Gaussian mixture, step for step as sklearn's `GaussianMixture(covariance_type=
    "diag")` (E-step, M-step with `reg_covar`, stop when the change of the mean log-likelihood is < tol).

    Returns:
        (posterior (N, K) at the final parameters, means, variances, weights, n_iter).
    """
    torch = _torch()
    n, d = z.shape
    zz = torch.cat([z, z * z], dim=1)  # one (N, 2d) operand: each E and M step is a single matmul
    eps10 = 10 * np.finfo(np.float64).eps

    def resp_and_bound(mu, var, w):
        prec = 1.0 / var
        const = -0.5 * (
            d * math.log(2 * math.pi) + (mu * mu * prec).sum(1) + torch.log(var).sum(1)
        ) + torch.log(w)
        lp = zz @ torch.cat([mu * prec, -0.5 * prec], dim=1).T + const[None, :]
        top = lp.max(1, keepdim=True).values
        lp.sub_(top).exp_()
        tot = lp.sum(1, keepdim=True)
        return lp.div_(tot), float((top + torch.log(tot)).mean())

    prev = -math.inf
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        r, lb = resp_and_bound(means, variances, weights)
        nk = r.sum(0) + eps10
        stats = (r.T @ zz) / nk[:, None]
        means = stats[:, :d]
        variances = (stats[:, d:] - means**2 + reg_covar).clamp_min(reg_covar)
        weights = nk / n
        weights = weights / weights.sum()
        if abs(lb - prev) < tol:
            break
        prev = lb
    r, _ = resp_and_bound(means, variances, weights)
    return r, means, variances, weights, it


def _kmeans_init(z, k: int, seed: int, lloyd_iter: int = 3):
    """Seeded k-means++ seeding (numpy, sequential) followed by a few Lloyd steps; returns hard assignments (N,)."""
    torch = _torch()
    rng = np.random.default_rng(seed)
    zn = z.cpu().numpy()
    n = zn.shape[0]
    z2 = (zn * zn).sum(1)
    idx = int(rng.integers(n))
    centers = [idx]
    d2 = np.maximum(z2 - 2 * zn @ zn[idx] + z2[idx], 0)
    for _ in range(1, k):
        cs = np.cumsum(d2)
        idx = (
            int(rng.integers(n))
            if cs[-1] <= 0
            else int(np.searchsorted(cs, rng.random() * cs[-1], side="right"))
        )
        idx = min(idx, n - 1)
        centers.append(idx)
        np.minimum(d2, np.maximum(z2 - 2 * zn @ zn[idx] + z2[idx], 0), out=d2)
    mu = z[torch.as_tensor(centers, device=z.device)].clone()
    zz = (z * z).sum(1)
    assign = None
    for _ in range(lloyd_iter + 1):
        new = (zz[:, None] - 2 * z @ mu.T + (mu * mu).sum(1)[None, :]).argmin(1)
        if assign is not None and bool((new == assign).all()):
            break
        assign = new
        onehot = torch.nn.functional.one_hot(assign, k).to(z.dtype)
        cnt = onehot.sum(0)
        mu = torch.where(cnt[:, None] > 0, (onehot.T @ z) / cnt.clamp_min(1)[:, None], mu)
    return assign


@register_scorer("nleep", higher_is_better=True, needs=("features", "labels"))
def nleep(
    prep: Prepared,
    *,
    component_ratio: float = 5.0,
    variance: float = 0.8,
    max_dim: int = 64,
    max_iter: int = 30,
    tol: float = 1e-3,
    em_float32: bool = True,
) -> float:
    """NLEEP: LEEP with the source head replaced by a Gaussian mixture fitted on the target features.

    Li et al., "Ranking Neural Checkpoints" (CVPR 2021); reference: google-research stable_transfer `nleep.py`
    and the SFDA repo's `NLEEP` (PCA keeping 80 % variance, 5 x C components). We keep the log of LEEP.
    Deviations for speed, documented: diagonal covariances (a full-covariance mixture of 5C components in tens of
    dimensions dominates the whole suite's runtime) and the PCA dimension capped at `max_dim`; initialisation by
    seeded k-means++ + 3 Lloyd steps (sklearn runs full k-means) and at most 30 EM iterations (sklearn: 100, same
    tol 1e-3); with 5C components each EM step is an N x 5C pass, so this bounds the cost. The EM itself equals
    sklearn's step for step (tested in float64). `em_float32` (default) runs the EM in float32, which halves its
    cost; posteriors only feed an average, and the LEEP step is done in float64.
    """
    torch = _torch()
    _need_classes(prep, 2)
    _, vecs = prep.pca(max_dim, variance=variance)
    z = prep.Xc @ vecs
    k = int(max(1, min(round(component_ratio * prep.C), prep.N)))
    assign = _kmeans_init(z, k, prep.seed)
    resp = torch.nn.functional.one_hot(assign, k).to(torch.float64)
    nk = resp.sum(0) + 10 * np.finfo(np.float64).eps
    means = resp.T @ z / nk[:, None]
    var = (resp.T @ (z * z)) / nk[:, None] - means**2 + 1e-6
    var = var.clamp_min(1e-6)
    w = nk / nk.sum()
    if em_float32:
        z, means, var, w = (t.to(torch.float32) for t in (z, means, var, w))
    post, *_ = gmm_diag_em(z, means, var, w, max_iter=max_iter, tol=tol)
    return finite_or_error(_leep_from_probs(post.to(torch.float64), prep.y, prep.C), "NLEEP")


# --------------------------------------------------------------------------------------------------- H-scores
@register_scorer("hscore", higher_is_better=True, needs=("features", "labels"))
def hscore(prep: Prepared) -> float:
    """H-score: tr(cov(f)^+ cov(E[f|y])).

    Bao et al., "An Information-Theoretic Approach to Transferability in Task Transfer Learning" (ICIP 2019);
    matches TLlib `tllib/ranking/hscore.py` (the authors' code). Deviation from google-research stable_transfer,
    which multiplies element-wise before the trace (a different quantity); we take the matrix product as in the
    paper. The pseudo-inverse uses numpy's rank tolerance (max eigenvalue * max(N, D) * eps) instead of
    rcond=1e-15, so rank-deficient covariances (D >= N, constant features) do not blow up on rounding noise.
    """
    torch = _torch()
    _need_classes(prep, 2)
    b = prep.between_factor
    chol = prep.scatter_cholesky()
    if chol is not None:
        L, keep = chol
        sol = torch.linalg.solve_triangular(L, b[:, keep].T, upper=False)
        return finite_or_error((sol**2).sum(), "H-score")
    lam, bp, _ = prep.centered_eig
    return finite_or_error((bp / lam).sum(), "H-score")


def ledoit_wolf_shrinkage(prep: Prepared) -> float:
    """Ledoit-Wolf shrinkage coefficient of the centred features, as sklearn's `ledoit_wolf_shrinkage`
    (computed from the shared scatter: ||S||_F^2 and sum_i ||x_i||^4, no extra D x D product)."""
    torch = _torch()
    n, d = prep.N, prep.D
    xc = prep.Xc
    row2 = (xc * xc).sum(1)
    beta_ = float((row2 * row2).sum())
    if prep.small_side == "d":
        fro2 = float((prep.scatter**2).sum())
    else:
        k = xc @ xc.T
        fro2 = float((k * k).sum())
    delta_ = fro2 / n**2
    tr = float(row2.sum()) / n
    mu = tr / d
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * tr + d * mu**2) / d
    beta = min(beta, delta)
    del torch
    return 0.0 if beta == 0 else beta / delta


@register_scorer("hscore_shrinkage", higher_is_better=True, needs=("features", "labels"))
def hscore_shrinkage(prep: Prepared) -> float:
    """Shrinkage (regularised) H-score: tr(Sigma_alpha^-1 (1 - alpha) cov(E[f|y])) with Ledoit-Wolf shrinkage.

    Ibrahim et al., "Newer is not always better: Rethinking transferability metrics, their peculiarities,
    stability and performance" (ECML-PKDD 2022); matches TLlib `regularized_h_score`: Sigma_alpha = (1 - alpha) S +
    alpha tr(S)/D I with S the biased (1/N) covariance of the centred features, between-class covariance with
    1/(N-1). Stays finite when D >> N (Sigma_alpha is positive definite whenever alpha > 0).
    """
    torch = _torch()
    _need_classes(prep, 2)
    a = ledoit_wolf_shrinkage(prep)
    n, d = prep.N, prep.D
    b = prep.between_factor
    mu = float((prep.Xc**2).sum()) / n / d
    if prep.small_side == "d":
        sig = (1 - a) * prep.scatter / n + a * mu * torch.eye(d, dtype=torch.float64, device=prep.device)
        L, info = torch.linalg.cholesky_ex(sig)
        if (
            int(info) == 0
            and float(torch.diagonal(L).min()) ** 2 > float(torch.diagonal(L).max()) ** 2 * 1e-12
        ):
            sol = torch.linalg.solve_triangular(L, b.T, upper=False)
            return finite_or_error((1 - a) * (sol**2).sum() / (n - 1), "shrinkage H-score")
    lam, bp, _ = prep.centered_eig
    den = (1 - a) * lam / n + a * mu
    keep = den > 0
    return finite_or_error((1 - a) * (bp[keep] / den[keep]).sum() / (n - 1), "shrinkage H-score")


# --------------------------------------------------------------------------------------------------- TransRate
def _logdet_i_plus(mat, scale: float):
    """log det(I + scale * mat) for a PSD matrix via Cholesky (eigenvalues on failure)."""
    torch = _torch()
    eye = torch.eye(mat.shape[0], dtype=mat.dtype, device=mat.device)
    L, info = torch.linalg.cholesky_ex(eye + scale * mat)
    if int(info) == 0:
        return 2.0 * torch.log(torch.diagonal(L)).sum()
    w = torch.linalg.eigvalsh(0.5 * (mat + mat.T)).clamp_min(0)
    return torch.log1p(scale * w).sum()


@register_scorer("transrate", higher_is_better=True, needs=("features", "labels"))
def transrate(prep: Prepared, *, eps: float = 1e-4) -> float:
    """TransRate: coding rate of the centred features minus the mean per-class coding rate.

    Huang et al., "Frustratingly Easy Transferability Estimation" (ICML 2022); formula of the authors' code as in
    TLlib `tllib/ranking/transrate.py`: R(Z) = 1/2 logdet(I + Z^T Z / (n eps)), features centred once globally,
    R(Z|Y) = (1/C) sum_c R(Z_c). Computed with the smaller of the D x D / n x n Gram forms (same determinant).
    """
    torch = _torch()
    _need_classes(prep, 2)
    n = prep.N
    if prep.small_side == "d":
        rz = 0.5 * _logdet_i_plus(prep.scatter, 1.0 / (n * eps))
    else:
        rz = 0.5 * _logdet_i_plus(prep.Xc @ prep.Xc.T, 1.0 / (n * eps))
    order = torch.argsort(prep.y, stable=True)
    counts = prep.counts.to(torch.int64).tolist()
    xs = prep.Xc[order]
    rzy = 0.0
    start = 0
    for nc in counts:
        zc = xs[start : start + nc]
        start += nc
        g = zc @ zc.T if nc <= prep.D else zc.T @ zc
        rzy += 0.5 * float(_logdet_i_plus(g, 1.0 / (nc * eps)))
    return finite_or_error(float(rz) - rzy / prep.C, "TransRate")


# --------------------------------------------------------------------------------------------------- GBC
@register_scorer("gbc", higher_is_better=True, needs=("features", "labels"))
def gbc(prep: Prepared, *, gaussian: str = "diagonal", pca_dim: int | None = 64) -> float:
    """GBC (published): summed pairwise Bhattacharyya coefficients, diagonal Gaussians after PCA to 64 dims.

    The setting of Pándy et al. (CVPR 2022) experiments: features PCA-reduced to 64 dimensions, diagonal
    per-class Gaussians, stable_transfer `get_gbc_score(..., "diagonal")` on the reduced features. See
    `gbc_spherical` for the isotropic variant on the features as given.
    """
    return _gbc(prep, gaussian=gaussian, pca_dim=pca_dim)


@register_scorer("gbc_spherical", higher_is_better=True, needs=("features", "labels"))
def gbc_spherical(prep: Prepared, *, gaussian: str = "spherical", pca_dim: int | None = None) -> float:
    """GBC variant: exact isotropic-Gaussian Bhattacharyya coefficients on the features as given (no PCA)."""
    return _gbc(prep, gaussian=gaussian, pca_dim=pca_dim)


def _gbc(prep: Prepared, *, gaussian: str, pca_dim: int | None) -> float:
    """GBC: minus the summed pairwise Bhattacharyya coefficients between per-class Gaussians.

    Pándy et al., "Transferability Estimation using Bhattacharyya Class Separability" (CVPR 2022); reference:
    google-research stable_transfer `gbc.py` (per-class population variance floored at 1e-4, `spherical` default,
    sum over ordered pairs c1 != c2). Deviation for `spherical`: the reference sums log of the *scalar* average
    variance once, i.e. drops the factor D of the log-determinant of sigma * I_D; we use the exact Bhattacharyya
    distance of isotropic Gaussians (tested against a full-covariance log-determinant). `diagonal` equals the
    reference. `pca_dim` optionally projects the features on their top principal directions first (the
    stable_transfer experiments can PCA-reduce features); default None uses the features as given, like
    `get_gbc_score`.
    """
    torch = _torch()
    _need_classes(prep, 2)
    if pca_dim is not None and pca_dim < prep.D:
        _, vecs = prep.pca(pca_dim)
        z = prep.Xc @ vecs
        cnt = prep.counts[:, None]
        mu = (
            torch.zeros(prep.C, z.shape[1], dtype=torch.float64, device=prep.device).index_add_(0, prep.y, z)
            / cnt
        )
        var = torch.zeros_like(mu).index_add_(0, prep.y, (z - mu[prep.y]) ** 2) / cnt
        var = var.clamp_min(1e-4)
    else:
        mu = prep.class_means
        var = prep.class_var.clamp_min(1e-4)
    c, d = mu.shape
    sq = (mu * mu).sum(1)
    dist2 = (sq[:, None] + sq[None, :] - 2 * mu @ mu.T).clamp_min(0)
    if gaussian == "spherical":
        s = var.mean(1)
        avg = 0.5 * (s[:, None] + s[None, :])
        db = dist2 / (8 * avg) + 0.5 * d * (
            torch.log(avg) - 0.5 * torch.log(s)[:, None] - 0.5 * torch.log(s)[None, :]
        )
    elif gaussian == "diagonal":
        db = torch.empty(c, c, dtype=torch.float64, device=prep.device)
        logv = torch.log(var).sum(1)
        step = max(1, int(2e7 // max(1, c * d)))
        for i in range(0, c, step):
            avg = 0.5 * (var[i : i + step, None, :] + var[None, :, :])
            diff2 = (mu[i : i + step, None, :] - mu[None, :, :]) ** 2
            db[i : i + step] = (diff2 / avg).sum(-1) / 8 + 0.5 * (
                torch.log(avg).sum(-1) - 0.5 * logv[i : i + step, None] - 0.5 * logv[None, :]
            )
    else:
        raise ScoreError(f"gaussian must be 'spherical' or 'diagonal', got {gaussian!r}")
    bc = torch.exp(-db)
    bc.fill_diagonal_(0)
    return finite_or_error(-bc.sum(), "GBC")


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


# --------------------------------------------------------------------------------------------------- PARC
def _avg_ranks(v):
    """1-based ranks with ties averaged (scipy.stats.rankdata 'average')."""
    torch = _torch()
    sv, order = torch.sort(v)
    ranks = torch.empty_like(v)
    if not bool((sv[1:] == sv[:-1]).any()):
        ranks[order] = torch.arange(1, v.numel() + 1, dtype=v.dtype, device=v.device)
        return ranks
    _, inv, counts = torch.unique_consecutive(sv, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.float64)
    avg = ends - (counts.to(torch.float64) - 1) / 2
    ranks[order] = avg[inv]
    return ranks


@register_scorer("parc", higher_is_better=True, needs=("features", "labels"))
def parc(prep: Prepared, *, pca_dim: int | None = 32, max_samples: int = 5000) -> float:
    """PARC: Spearman correlation (x100) between the feature and label dissimilarity matrices.

    Bolya et al., "Scalable Diverse Model Selection for Accessible Transfer Learning" (NeurIPS 2021); reference as
    in the SFDA repo's `PARC` (PCA to 32 dims, standardise columns, RDM = 1 - Pearson correlation between samples,
    one-hot label RDM, Spearman over the upper triangle, x100). Deviations: exact PCA (the reference uses a
    randomized solver with one power iteration); samples with zero variance after standardisation get
    correlation 0 instead of NaN; above `max_samples` (default 5000, i.e. 12.5 M pairs) a seeded stratified
    subsample bounds the O(N^2) memory and sort (the reference intends 15000 but ignores its subsample). The label RDM takes two values, so its ranks are closed-form.
    """
    torch = _torch()
    _need_classes(prep, 2)
    n = prep.N
    idx = torch.arange(n, device=prep.device)
    if n > max_samples:
        rng = np.random.default_rng(prep.seed)
        y = prep.y.cpu().numpy()
        frac = max_samples / n
        pick = []
        for c in range(prep.C):
            members = np.flatnonzero(y == c)
            take = max(1, int(round(frac * len(members))))
            pick.append(rng.choice(members, size=min(take, len(members)), replace=False))
        idx = torch.from_numpy(np.sort(np.concatenate(pick))).to(prep.device)
    if pca_dim is not None and pca_dim < prep.D:
        _, vecs = prep.pca(min(pca_dim, n))
        # PARC correlates samples across feature columns, so a component's sign changes the value: use the
        # sign sklearn's PCA gives (largest-magnitude loading of each component positive, `svd_flip` with
        # u_based_decision=False, sklearn >= 1.5), which is what the authors' `PCA(n_components=32)` produces.
        rows = torch.argmax(vecs.abs(), dim=0)
        sign = torch.sign(vecs[rows, torch.arange(vecs.shape[1], device=vecs.device)])
        z = prep.Xc[idx] @ (vecs * torch.where(sign == 0, torch.ones_like(sign), sign)[None, :])
    else:
        z = prep.X[idx]
    z = z - z.mean(0)
    sd = z.std(0, unbiased=False)
    z = z / torch.where(sd > 0, sd, torch.ones_like(sd))
    z = z - z.mean(1, keepdim=True)
    nr = z.norm(dim=1, keepdim=True)
    z = torch.where(nr > 0, z / nr.clamp_min(1e-300), torch.zeros_like(z))
    corr = z @ z.T
    m = len(idx)
    iu = torch.triu_indices(m, m, 1, device=prep.device)
    a = 1 - corr[iu[0], iu[1]]
    del corr
    yy = prep.y[idx]
    same = yy[iu[0]] == yy[iu[1]]
    m0 = int(same.sum())
    m1 = a.numel() - m0
    if m0 == 0 or m1 == 0:
        raise ScoreError("PARC needs both same-class and different-class pairs")
    # The label ranks take two values, so Spearman only needs the rank sum of the same-class pairs: sort the two
    # groups separately (numpy's SIMD sort) and count, for every same-class value, the different-class values
    # below it by binary search. Exact; when the feature dissimilarities have ties we fall back to full ranks.
    a_same = np.sort(a[same].cpu().numpy())
    a_diff = np.sort(a[~same].cpu().numpy())
    lo = np.searchsorted(a_diff, a_same, side="left")
    hi = np.searchsorted(a_diff, a_same, side="right")
    ties = bool((hi > lo).any() or (a_same[1:] == a_same[:-1]).any() or (a_diff[1:] == a_diff[:-1]).any())
    if ties:
        ra = _avg_ranks(a)
        rb = torch.where(same, torch.full_like(a, (m0 + 1) / 2), torch.full_like(a, m0 + (m1 + 1) / 2))
        ra = ra - ra.mean()
        rb = rb - rb.mean()
        den = float(ra.norm() * rb.norm())
        if den == 0:
            raise ScoreError("PARC is undefined: all feature dissimilarities are equal")
        return finite_or_error(100.0 * float((ra * rb).sum()) / den, "PARC")
    big_m = float(m0 + m1)
    rank_sum_same = m0 * (m0 + 1) / 2 + float(lo.sum(dtype=np.float64))
    cov = rank_sum_same - m0 * (big_m + 1) / 2
    den = math.sqrt(big_m * (big_m * big_m - 1) / 12 * (m0 * m1 / big_m))
    # the label RDM is 0 for same-class pairs, so its ranks fall as `same` rises: Spearman = -corr(rank(a), same)
    return finite_or_error(-100.0 * cov / den, "PARC")


# --------------------------------------------------------------------------------------------------- baselines
def _sq_dists(q, x, qn, xn):
    return (qn[:, None] + xn[None, :] - 2 * q @ x.T).clamp_min(0)


@register_scorer("knn_loo", higher_is_better=True, needs=("features", "labels"))
def knn_loo(prep: Prepared, *, k: int = 5) -> float:
    """Leave-one-out k-nearest-neighbour accuracy (Euclidean), a simple baseline.

    Each sample is classified by majority vote of its k nearest other samples; ties go to the class whose
    neighbours have the smaller summed rank (closer neighbours win). Distances are computed in float64 for small
    problems and in float32 when N^2 D > 1e9 (neighbour order only; the result is an accuracy).
    """
    torch = _torch()
    _need_classes(prep, 2)  # with one class every vote is right: 1.0 says nothing about the features
    n = prep.N
    kk = int(min(k, n - 1))
    x = prep.X
    if n * n * prep.D > 1e9:
        x = x.to(torch.float32)
    xn = (x * x).sum(1)
    w = 1.0 + 1e-6 * (kk - torch.arange(kk, device=prep.device, dtype=torch.float64)) / kk
    correct = 0
    step = 1024
    for s in range(0, n, step):
        d = _sq_dists(x[s : s + step], x, xn[s : s + step], xn)
        rows = torch.arange(d.shape[0], device=prep.device)
        d[rows, rows + s] = math.inf
        nb = torch.topk(d, kk, dim=1, largest=False, sorted=True).indices
        votes = torch.zeros(d.shape[0], prep.C, dtype=torch.float64, device=prep.device)
        votes.scatter_add_(1, prep.y[nb], w.expand(d.shape[0], kk).contiguous())
        correct += int((votes.argmax(1) == prep.y[s : s + step]).sum())
    return correct / n


@register_scorer("ncm_loo", higher_is_better=True, needs=("features", "labels"))
def ncm_loo(prep: Prepared) -> float:
    """Leave-one-out nearest-class-mean accuracy (Euclidean), a simple baseline.

    A sample's own class mean is recomputed without it (closed form); a class with a single sample has no mean
    left, so that sample counts as an error.
    """
    torch = _torch()
    _need_classes(prep, 2)  # with one class the nearest mean is always right: 1.0 says nothing
    mu = prep.class_means
    x = prep.X
    d = _sq_dists(x, mu, (x * x).sum(1), (mu * mu).sum(1))
    nc = prep.counts[prep.y]
    rows = torch.arange(prep.N, device=prep.device)
    own = ((x - mu[prep.y]) ** 2).sum(1)
    loo = torch.where(nc > 1, own * (nc / (nc - 1).clamp_min(1)) ** 2, torch.full_like(own, math.inf))
    d[rows, prep.y] = loo
    # classes whose only member is this sample's neighbour are fine; ties broken by lowest class index
    pred = d.argmin(1)
    ok = (pred == prep.y) & (nc > 1)
    return float(ok.to(torch.float64).mean())


__all__ = [
    "etran_energy",
    "etran_fuse",
    "etran_lda",
    "gbc",
    "gbc_spherical",
    "gmm_diag_em",
    "hscore",
    "hscore_shrinkage",
    "knn_loo",
    "ledoit_wolf_shrinkage",
    "leep",
    "logme",
    "logme_details",
    "ncm_loo",
    "nce",
    "nleep",
    "parc",
    "rank_tol",
    "sfda",
    "sfda_cv",
    "transrate",
]
