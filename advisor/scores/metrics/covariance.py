"""Class-covariance scores: H-score (plain and shrunk), TransRate and GBC."""

from __future__ import annotations

from advisor.errors import ScoreError
from advisor.scores.metrics._common import _need_classes
from advisor.scores.prepare import Prepared, _torch, finite_or_error
from advisor.scores.registry import register_scorer


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
