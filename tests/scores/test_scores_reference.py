"""Each metric against an independent computation: naive re-derivations of the reference code, brute force
log-determinants and inverses, closed forms on tiny inputs, and sklearn where it fits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from advisor.scores import Prepared
from advisor.scores import metrics as M


def _data(n=120, d=8, c=4, seed=0, sep=1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    rng.shuffle(y)
    x = rng.standard_normal((n, d)) + sep * rng.standard_normal((c, d))[y]
    return x, y


def _softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


# ---------------------------------------------------------------- LogME
def _thuml_logme_naive(f, y):
    """Per-class loop re-derived from thuml/LogME's fixed-point solver (N >= D path)."""
    n, d = f.shape
    u, s, vh = np.linalg.svd(f, full_matrices=False)
    sigma = s**2
    out = []
    for c in range(int(y.max()) + 1):
        yc = (y == c).astype(np.float64)
        x2 = (u.T @ yc) ** 2
        res_x2 = (yc**2).sum() - x2.sum()
        alpha, beta = 1.0, 1.0
        for _ in range(11):
            t = alpha / beta
            gamma = (sigma / (sigma + t)).sum()
            m2 = (sigma * x2 / ((t + sigma) ** 2)).sum()
            res2 = (x2 / ((1 + sigma / t) ** 2)).sum() + res_x2
            alpha = gamma / (m2 + 1e-5)
            beta = (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - t) / t <= 1e-3:
                break
        ev = (
            d / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - 0.5 * np.sum(np.log(alpha + beta * sigma))
            - beta / 2 * res2
            - alpha / 2 * m2
            - n / 2 * np.log(2 * np.pi)
        )
        out.append(ev / n)
    return float(np.mean(out))


def test_logme_matches_thuml_when_n_ge_d():
    x, y = _data(200, 10, 5)
    assert rel(M.logme(Prepared(x, y)), _thuml_logme_naive(x, y)) < 1e-9


def _brute_evidence(f, yc, alpha, beta):
    """log N(y | 0, I/beta + F F^T/alpha) / N by an explicit N x N log-determinant and solve."""
    n = f.shape[0]
    cov = np.eye(n) / beta + f @ f.T / alpha
    sign, logdet = np.linalg.slogdet(cov)
    assert sign > 0
    quad = yc @ np.linalg.solve(cov, yc)
    return (-0.5 * (quad + logdet + n * np.log(2 * np.pi))) / n


def test_logme_is_exact_evidence_when_n_lt_d():
    x, y = _data(20, 45, 3, seed=1)
    prep = Prepared(x, y)
    det = M.logme_details(prep, max_iter=2000, tol=1e-13, eps=0.0)
    assert det["rank"] == 20
    for c in range(3):
        a, b = float(det["alpha"][c]), float(det["beta"][c])
        yc = (y == c).astype(float)
        brute = _brute_evidence(x, yc, a, b)
        assert rel(float(det["evidence"][c]), brute) < 1e-8
        # it is the maximum: moving alpha or beta lowers the brute-force evidence
        for da, db in ((1.2, 1), (1 / 1.2, 1), (1, 1.2), (1, 1 / 1.2)):
            assert _brute_evidence(x, yc, a * da, b * db) < brute
        # thuml's fast path drops -(D - k)/2 log(alpha): exactly that much apart
        naive_drop = float(det["evidence"][c]) + (45 - 20) / 2 * np.log(a) / 20
        assert abs(naive_drop - brute) > 1e-3


# ---------------------------------------------------------------- LEEP / NCE
def _leep_naive(p, y):
    n, z = p.shape
    c = int(y.max()) + 1
    joint = np.zeros((c, z))
    for i in range(n):
        joint[y[i]] += p[i] / n
    cond = (joint / joint.sum(0, keepdims=True)).T
    eep = p @ cond
    return float(np.mean(np.log([eep[i, y[i]] for i in range(n)])))


def test_leep_matches_naive_and_closed_form():
    rng = np.random.default_rng(3)
    x, y = _data(90, 4, 3)
    logits = rng.standard_normal((90, 6)) * 2
    assert rel(M.leep(Prepared(x, y, logits=logits)), _leep_naive(_softmax(logits), y)) < 1e-10
    # a source head that already predicts the target labels perfectly: LEEP = log 1 = 0
    assert abs(M.leep(Prepared(x, y, probs=np.eye(3)[y]))) < 1e-12
    # uninformative uniform predictions: LEEP = mean log of empirical class frequency
    p = np.full((90, 5), 0.2)
    assert abs(M.leep(Prepared(x, y, probs=p)) - np.log(1 / 3)) < 1e-12


def test_nce_matches_naive():
    rng = np.random.default_rng(4)
    x, y = _data(60, 3, 3)
    logits = rng.standard_normal((60, 5))
    z = logits.argmax(1)
    n = 60
    joint = np.zeros((3, 5))
    for s, t in zip(z, y, strict=True):
        joint[t, s] += 1 / n
    h = 0.0
    for s in range(5):
        pz = joint[:, s].sum()
        for t in range(3):
            if joint[t, s] > 0:
                h -= joint[t, s] * np.log(joint[t, s] / pz)
    assert rel(M.nce(Prepared(x, y, logits=logits)), -h) < 1e-12
    assert abs(M.nce(Prepared(x, y, probs=np.eye(3)[y]))) < 1e-12  # Y determined by Z


# ---------------------------------------------------------------- NLEEP
def test_gmm_em_matches_sklearn():
    sk = pytest.importorskip("sklearn.mixture")
    import torch

    rng = np.random.default_rng(5)
    z = rng.standard_normal((150, 3)) + np.repeat(rng.standard_normal((3, 3)) * 3, 50, axis=0)
    means0 = z[[0, 60, 120, 30]]
    var0 = np.ones((4, 3))
    w0 = np.full(4, 0.25)
    g = sk.GaussianMixture(
        4,
        covariance_type="diag",
        weights_init=w0,
        means_init=means0,
        precisions_init=1 / var0,
        max_iter=7,
        tol=0,
    )
    with pytest.warns(Warning):  # sklearn warns that it did not converge (tol=0 runs all iterations)
        g.fit(z)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    post, mu, var, w, it = M.gmm_diag_em(t(z), t(means0), t(var0), t(w0), max_iter=7, tol=0.0)
    assert it == 7
    np.testing.assert_allclose(mu.numpy(), g.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(var.numpy(), g.covariances_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(post.numpy(), g.predict_proba(z), rtol=1e-7, atol=1e-10)


def test_nleep_pca_dims_match_sklearn_and_value_is_leep_of_posterior():
    decomposition = pytest.importorskip("sklearn.decomposition")
    x, y = _data(100, 12, 3, seed=6)
    prep = Prepared(x, y)
    lam, vecs = prep.pca(64, variance=0.8)
    pca = decomposition.PCA(n_components=0.8, svd_solver="full").fit(x)
    assert vecs.shape[1] == pca.n_components_
    np.testing.assert_allclose(lam.numpy() / 99, pca.explained_variance_, rtol=1e-9)
    v = M.nleep(prep)
    assert np.isfinite(v) and v <= 0
    assert M.nleep(Prepared(x, y)) == v  # seeded: deterministic


# ---------------------------------------------------------------- H-scores, TransRate
def test_hscore_matches_tllib_and_differs_from_elementwise():
    x, y = _data(150, 6, 4)
    covf = np.cov(x, rowvar=False)
    g = np.zeros_like(x)
    for c in range(4):
        g[y == c] = x[y == c].mean(0)
    covg = np.cov(g, rowvar=False)
    ref = np.trace(np.linalg.pinv(covf, rcond=1e-15) @ covg)
    ours = M.hscore(Prepared(x, y))
    assert rel(ours, ref) < 1e-9
    google = np.trace(np.linalg.pinv(covf, rcond=1e-5) * covg)  # the element-wise variant we do not follow
    assert rel(ours, google) > 1e-3


@pytest.mark.parametrize("case", ["d_gt_n", "constant_columns", "duplicated_column"])
def test_hscore_rank_deficient_uses_pseudo_inverse(case):
    if case == "d_gt_n":
        x, y = _data(12, 30, 3, seed=2)  # D > N: singular covariance
    else:
        x, y = _data(80, 6, 3, seed=2)
        if case == "constant_columns":
            x[:, :2] = 5.0
        else:
            x[:, 1] = x[:, 0]
    covf = np.cov(x, rowvar=False)
    g = np.zeros_like(x)
    for c in range(3):
        g[y == c] = x[y == c].mean(0)
    ref = np.trace(np.linalg.pinv(covf, rcond=1e-10) @ np.cov(g, rowvar=False))
    assert rel(M.hscore(Prepared(x, y)), ref) < 1e-6


def test_hscore_shrinkage_matches_tllib():
    cov_mod = pytest.importorskip("sklearn.covariance")
    for n, d in ((150, 6), (15, 40)):
        x, y = _data(n, d, 3, seed=7)
        f = x - x.mean(0)
        lw = cov_mod.LedoitWolf(assume_centered=False).fit(f)
        g = np.zeros_like(f)
        for c in range(3):
            g[y == c] = f[y == c].mean(0)
        ref = np.trace(
            np.linalg.pinv(lw.covariance_, rcond=1e-15) @ ((1 - lw.shrinkage_) * np.cov(g, rowvar=False))
        )
        prep = Prepared(x, y)
        assert rel(M.ledoit_wolf_shrinkage(prep), lw.shrinkage_) < 1e-9
        assert rel(M.hscore_shrinkage(prep), ref) < 1e-7


def _coding_rate(z, eps):
    n, d = z.shape
    return 0.5 * np.linalg.slogdet(np.eye(d) + 1 / (n * eps) * z.T @ z)[1]


@pytest.mark.parametrize("shape", [(120, 6), (20, 30)])
def test_transrate_matches_tllib(shape):
    x, y = _data(*shape, 3, seed=8)
    z = x - x.mean(0)
    ref = _coding_rate(z, 1e-4) - sum(_coding_rate(z[y == c], 1e-4) for c in range(3)) / 3
    assert rel(M.transrate(Prepared(x, y)), ref) < 1e-9


# ---------------------------------------------------------------- GBC
def _bhatt_full(m1, m2, s1, s2):
    s = (s1 + s2) / 2
    d = m1 - m2
    return d @ np.linalg.solve(s, d) / 8 + 0.5 * (
        np.linalg.slogdet(s)[1] - 0.5 * np.linalg.slogdet(s1)[1] - 0.5 * np.linalg.slogdet(s2)[1]
    )


def test_gbc_diagonal_matches_google_and_spherical_is_exact_bhattacharyya():
    x, y = _data(90, 5, 3, seed=9)
    mus = [x[y == c].mean(0) for c in range(3)]
    vs = [np.maximum(x[y == c].var(0), 1e-4) for c in range(3)]
    ref_diag = 0.0
    ref_sph = 0.0
    for a in range(3):
        for b in range(3):
            if a == b:
                continue
            avg = (vs[a] + vs[b]) / 2
            dist = ((mus[a] - mus[b]) ** 2 / avg).sum() / 8 + 0.5 * (
                np.log(avg).sum() - 0.5 * np.log(vs[a]).sum() - 0.5 * np.log(vs[b]).sum()
            )
            ref_diag -= np.exp(-dist)
            sa, sb = vs[a].mean() * np.eye(5), vs[b].mean() * np.eye(5)
            ref_sph -= np.exp(-_bhatt_full(mus[a], mus[b], sa, sb))
            # the diagonal case is also a full-covariance Bhattacharyya distance
            assert abs(dist - _bhatt_full(mus[a], mus[b], np.diag(vs[a]), np.diag(vs[b]))) < 1e-10
    prep = Prepared(x, y)
    assert rel(M.gbc(prep, gaussian="diagonal"), ref_diag) < 1e-10
    assert rel(M.gbc(prep, gaussian="spherical"), ref_sph) < 1e-10


# ---------------------------------------------------------------- SFDA / ETran
def _iterative_a(a, it=3):
    x = a.sum(1)
    for _ in range(it):
        t = a @ x
        yv = t / np.linalg.norm(t)
        t = a @ yv
        x = t / np.linalg.norm(t)
    return x @ a @ yv


def _sfda_ref_fit(x, y, shrinkage=None):
    """Re-derived from TencentARC/SFDA `SFDA._solve_eigen` with the generalized eigenproblem kept."""
    classes = np.unique(y)
    n, d = x.shape
    pri = np.bincount(y) / n
    means = np.stack([x[y == c].mean(0) for c in classes])
    sw = sum(pri[c] * np.cov(x[y == c].T, bias=1) for c in classes)
    if shrinkage is None:
        shrinkage = max(np.exp(-5 * _iterative_a(sw)), 1e-10)
    st = np.cov(x.T, bias=1)
    st = (1 - shrinkage) * st + shrinkage * np.trace(st) / d * np.eye(d)
    ssw = (1 - shrinkage) * sw + shrinkage * np.trace(sw) / d * np.eye(d)
    evals, evecs = scipy.linalg.eigh(st - ssw, ssw)
    evecs = evecs[:, np.argsort(evals)[::-1]]
    coef = means @ evecs @ evecs.T
    icpt = -0.5 * np.diag(means @ coef.T) + np.log(pri)
    return _softmax(x @ coef.T + icpt), shrinkage


def _sfda_ref(x, y):
    x = x.copy()
    n, c = len(y), len(np.unique(y))
    prob, s = _sfda_ref_fit(x, y)
    prob = np.exp(prob) / np.exp(prob).sum(1, keepdims=True)
    means = np.stack([x[y == k].mean(0) for k in range(c)])
    other = np.stack([(means.sum(0) - means[k]) / (c - 1) for k in range(c)])
    for k in range(c):
        idx = np.where(y == k)[0]
        py = prob[idx, k][:, None]
        x[idx] = py * x[idx] + (1 - py) * other[k]
    prob2, _ = _sfda_ref_fit(x, y, s)
    return prob2[np.arange(n), y].mean()


@pytest.mark.parametrize("shape", [(120, 6), (30, 50)])  # primal (D <= N) and Woodbury dual (D > N) paths
def test_sfda_in_sample_matches_reference(shape):
    x, y = _data(*shape, 4, seed=10, sep=0.5)
    x = x * 0.3  # keep the adaptive shrinkage away from its 1e-10 floor so the test exercises it
    assert rel(M.sfda(Prepared(x, y), folds=0), _sfda_ref(x, y)) < 1e-8


def test_lda_dual_equals_primal():
    import torch

    x, y = _data(24, 40, 3, seed=16)
    x = torch.from_numpy(x * 0.2)
    yt = torch.from_numpy(y)
    sums = torch.zeros(3, 40, dtype=torch.float64).index_add_(0, yt, x)
    counts = torch.bincount(yt, minlength=3).to(torch.float64)
    c1, i1, s1 = M._lda_fit(x.T @ x, sums, counts, None)
    c2, i2, s2, *_ = M._lda_fit_dual(x, yt, 3, None)
    assert rel(s2, s1) < 1e-10
    np.testing.assert_allclose(c2.numpy(), c1.numpy(), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(i2.numpy(), i1.numpy(), rtol=1e-7, atol=1e-9)


def test_etran_lda_in_sample_matches_sklearn_lda():
    da = pytest.importorskip("sklearn.discriminant_analysis")
    x, y = _data(120, 6, 4, seed=11, sep=0.5)
    x = x * 0.3
    _, s = _sfda_ref_fit(x, y)
    lda = da.LinearDiscriminantAnalysis(solver="lsqr", shrinkage=s).fit(x, y)
    ref = lda.predict_proba(x)[np.arange(len(y)), y].mean()
    assert rel(M.etran_lda(Prepared(x, y), folds=0), ref) < 1e-9


def test_cross_fitting_avoids_saturation():
    x, y = _data(40, 200, 4, seed=12, sep=0.0)  # pure noise, 10 samples per class, D = 200
    prep = Prepared(x, y)
    assert M.etran_lda(prep, folds=0) > 0.99  # in-sample: memorised
    assert M.etran_lda(prep, folds=2) < 0.6  # held out: near chance (0.25)
    assert M.sfda(prep, folds=2) < 0.6


def test_etran_energy_and_fuse():
    x, y = _data(400, 5, 2)
    e = scipy.special.logsumexp(x, axis=1)
    assert rel(M.etran_energy(Prepared(x, y)), np.sort(e)[:2].mean()) < 1e-12
    fused = M.etran_fuse({"energy": [1.0, 3.0, 2.0], "lda": [0.5, 0.5, 0.9]})
    np.testing.assert_allclose(fused, [0.0, 1.0, 1.5])


# ---------------------------------------------------------------- PARC
@pytest.mark.parametrize("dups", [False, True])
def test_parc_matches_naive_reference(dups):
    x, y = _data(60, 7, 3, seed=13)
    if dups:  # duplicated rows tie many dissimilarities: exercises the full-sort rank path
        x[40:50], y[40:50] = x[:10], y[:10]
    z = (x - x.mean(0)) / x.std(0)
    rdm1 = 1 - np.corrcoef(z)
    # np.corrcoef leaves +-1e-16 noise on identical one-hot rows, which splits the tied "same class" group of the
    # reference's Spearman ranks at random; the label RDM is exactly two-valued, so round that noise away.
    rdm2 = np.round(1 - np.corrcoef(np.eye(3)[y]), 12)
    iu = np.triu_indices(60, 1)
    ref = scipy.stats.spearmanr(rdm1[iu], rdm2[iu])[0] * 100
    # with duplicates, rounding in either implementation can split or merge a few near-tied values
    assert rel(M.parc(Prepared(x, y), pca_dim=None), ref) < (1e-6 if dups else 1e-9)
    v = M.parc(Prepared(x, y), pca_dim=4)
    assert np.isfinite(v)


# ---------------------------------------------------------------- baselines
def test_knn_and_ncm_match_loops():
    x, y = _data(50, 4, 3, seed=14, sep=0.8)
    n = len(y)
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    ok = 0
    for i in range(n):
        di = d[i].copy()
        di[i] = np.inf
        nb = np.argsort(di, kind="stable")[:5]
        votes = np.zeros(3)
        for r, j in enumerate(nb):
            votes[y[j]] += 1 + 1e-6 * (5 - r) / 5
        ok += votes.argmax() == y[i]
    assert M.knn_loo(Prepared(x, y), k=5) == pytest.approx(ok / n, abs=1e-12)
    ok = 0
    for i in range(n):
        dist = []
        for c in range(3):
            members = [j for j in range(n) if y[j] == c and j != i]
            dist.append(((x[i] - x[members].mean(0)) ** 2).sum())
        ok += int(np.argmin(dist) == y[i])
    assert M.ncm_loo(Prepared(x, y)) == pytest.approx(ok / n, abs=1e-12)


def test_rank_tol_rule():
    import torch

    w = torch.tensor([1.0, 1e-20, 2.0], dtype=torch.float64)
    assert M.rank_tol(w, 10, 3) == pytest.approx(2.0 * 10 * np.finfo(float).eps)
    assert math.isfinite(M.rank_tol(w, 1, 1))


def test_gbc_pca_option_equals_gbc_on_sklearn_pca_features():
    decomposition = pytest.importorskip("sklearn.decomposition")
    x, y = _data(90, 9, 3, seed=15)
    z = decomposition.PCA(n_components=3, svd_solver="full").fit_transform(x)
    for g in ("spherical", "diagonal"):
        assert rel(M.gbc(Prepared(x, y), gaussian=g, pca_dim=3), M.gbc(Prepared(z, y), gaussian=g)) < 1e-9
