"""Pairwise-distance scores: PARC and the leave-one-out kNN and nearest-class-mean baselines."""

from __future__ import annotations

import math

import numpy as np

from advisor.errors import ScoreError
from advisor.scores.metrics._common import _need_classes
from advisor.scores.prepare import Prepared, _torch, finite_or_error
from advisor.scores.registry import register_scorer


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
