"""Shared precomputation for the score suite: validated float64 tensors, class sums and the spectral pieces.

Every metric reads the same `Prepared` object, so a pass over the N x D feature matrix (class sums, the D x D
second-moment matrix, its eigendecomposition, the Cholesky factors) is done once and reused by all metrics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from advisor.errors import ScoreError

# Largest min(N, D) for which the PCA basis comes from an exact eigendecomposition; above it we use a seeded
# randomized subspace iteration (Halko et al. 2011), which is what sklearn's PCA(svd_solver="randomized") does.
EXACT_PCA_MAX = 1024


def _torch():
    import torch

    return torch


def _as_numpy(a: Any, name: str) -> np.ndarray | None:
    if a is None:
        return None
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.dtype == object:
        raise ScoreError(f"{name} is an object array; pass a numeric array")
    return arr


def _eigh(a):
    """Symmetric eigendecomposition, ascending. On CPU scipy's divide-and-conquer driver is several times faster
    than torch's here, so CPU tensors go through scipy; other devices use torch."""
    torch = _torch()
    if a.device.type == "cpu":
        import scipy.linalg

        w, v = scipy.linalg.eigh(a.numpy(), driver="evd", check_finite=False)
        return torch.from_numpy(w), torch.from_numpy(v)
    return torch.linalg.eigh(a)


def _eigvalsh(a):
    torch = _torch()
    if a.device.type == "cpu":
        import scipy.linalg

        return torch.from_numpy(scipy.linalg.eigvalsh(a.numpy(), driver="evd", check_finite=False))
    return torch.linalg.eigvalsh(a)


def rank_tol(eigvals, n: int, d: int) -> float:
    """Eigenvalues below this are treated as zero (numpy's matrix_rank rule: max * max(n, d) * eps)."""
    top = float(eigvals.max()) if eigvals.numel() else 0.0
    return max(top, 0.0) * max(n, d) * np.finfo(np.float64).eps


class Prepared:
    """Validated inputs plus lazily computed, cached intermediate results shared across metrics.

    Args:
        features: (N, D) array (numpy or torch, any float dtype); converted to float64.
        labels: (N,) integer labels (any values; remapped to 0..C-1). Rows with a negative label (unlabelled,
            as in `FeatureSet`) are dropped.
        logits: optional (N, Z) source-head logits (pre-softmax); outputs that already are probabilities
            (`looks_like_probabilities`) are used as probs, not softmaxed again (see `logits_kind`).
        probs: optional (N, Z) source-head probabilities (rows are renormalised to sum to 1).
        device: torch device for the computation ("cpu", "cuda", ...).
        seed: seed for the randomized pieces (PCA sketch, k-means++ seeding, fold assignment, subsampling).

    Raises:
        ScoreError: on shape mismatches, non-finite values, non-integer labels or fewer than 2 samples.
    """

    def __init__(
        self, features, labels, *, logits=None, probs=None, device: str = "cpu", seed: int = 0
    ) -> None:
        torch = _torch()
        f = _as_numpy(features, "features")
        y = _as_numpy(labels, "labels")
        if f is None or f.ndim != 2:
            raise ScoreError(
                f"features must be a 2-D array (N, D), got shape {None if f is None else f.shape}"
            )
        if y is None or y.ndim != 1 or y.shape[0] != f.shape[0]:
            raise ScoreError(
                f"labels must be a 1-D array with one entry per feature row: features {f.shape}, "
                f"labels {None if y is None else y.shape}"
            )
        if not np.issubdtype(f.dtype, np.number) or np.issubdtype(f.dtype, np.complexfloating):
            raise ScoreError(f"features must be real numbers, got dtype {f.dtype}")
        if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
            if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
                y = y.astype(np.int64)
            else:
                raise ScoreError(f"labels must be integers, got dtype {y.dtype}")
        keep = y >= 0
        src = None
        kind = None
        if logits is not None:
            src, kind = _as_numpy(logits, "logits"), "logits"
        elif probs is not None:
            src, kind = _as_numpy(probs, "probs"), "probs"
        if src is not None and (src.ndim != 2 or src.shape[0] != f.shape[0]):
            raise ScoreError(f"{kind} must be (N, Z) with N={f.shape[0]} rows, got shape {src.shape}")
        if not keep.all():
            f, y = f[keep], y[keep]
            src = src[keep] if src is not None else None
        if f.shape[0] < 2:
            raise ScoreError(f"need at least 2 labelled samples, got {f.shape[0]}")
        f64 = np.asarray(f, dtype=np.float64)
        if not np.isfinite(f64).all():
            raise ScoreError("features contain NaN or inf values")
        self.classes, yi = np.unique(y, return_inverse=True)
        self.device = torch.device(device)
        self.seed = int(seed)
        self.X = torch.from_numpy(np.ascontiguousarray(f64)).to(self.device)
        self.y = torch.from_numpy(yi.astype(np.int64)).to(self.device)
        self.N, self.D = self.X.shape
        self.C = len(self.classes)
        self.counts = torch.bincount(self.y, minlength=self.C).to(torch.float64)
        self.P = None
        if src is not None:
            s64 = np.asarray(src, dtype=np.float64)
            if not np.isfinite(s64).all():
                raise ScoreError(f"{kind} contain NaN or inf values")
            t = torch.from_numpy(np.ascontiguousarray(s64)).to(self.device)
            if kind == "logits" and looks_like_probabilities(s64):
                kind = "probs"  # already a softmax output (e.g. a quantized TFLite head): never softmax twice
            if kind == "logits":
                t = torch.softmax(t, dim=1)
            else:
                if (t < 0).any():
                    raise ScoreError("probs contain negative values; pass logits instead if these are scores")
                rs = t.sum(1, keepdim=True)
                t = torch.where(rs > 0, t / rs.clamp_min(1e-300), torch.full_like(t, 1.0 / t.shape[1]))
            self.P = t
        self.source_kind = kind
        # "logits" | "probabilities" | None: what the source-head outputs were taken as
        self.logits_kind = None if kind is None else ("logits" if kind == "logits" else "probabilities")
        self._cache: dict[Any, Any] = {}

    # ----------------------------------------------------------------- generic cache
    def cached(self, key, fn):
        """Return `fn()` computed once per key."""
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    # ----------------------------------------------------------------- class statistics
    @property
    def class_sums(self):
        """(C, D) sum of features per class."""

        def f():
            torch = _torch()
            s = torch.zeros(self.C, self.D, dtype=torch.float64, device=self.device)
            return s.index_add_(0, self.y, self.X)

        return self.cached("class_sums", f)

    @property
    def class_means(self):
        """(C, D) per-class mean."""
        return self.cached("class_means", lambda: self.class_sums / self.counts[:, None])

    @property
    def mean(self):
        """(D,) global mean."""
        return self.cached("mean", lambda: self.X.mean(0))

    @property
    def Xc(self):
        """(N, D) globally centred features."""
        return self.cached("Xc", lambda: self.X - self.mean)

    @property
    def class_var(self):
        """(C, D) per-class population variance (ddof=0), computed from class-centred rows for accuracy."""

        def f():
            torch = _torch()
            r = (self.X - self.class_means[self.y]) ** 2
            v = torch.zeros(self.C, self.D, dtype=torch.float64, device=self.device).index_add_(0, self.y, r)
            return v / self.counts[:, None]

        return self.cached("class_var", f)

    @property
    def between_factor(self):
        """(C, D) matrix B with rows sqrt(n_k) (mu_k - mu): B^T B is the between-class scatter."""
        return self.cached(
            "between", lambda: self.counts.sqrt()[:, None] * (self.class_means - self.mean[None, :])
        )

    @property
    def onehot(self):
        """(N, C) one-hot float64 labels."""

        def f():
            torch = _torch()
            return torch.nn.functional.one_hot(self.y, self.C).to(torch.float64)

        return self.cached("onehot", f)

    # ----------------------------------------------------------------- second moments
    @property
    def gram(self):
        """(D, D) uncentred second-moment matrix X^T X (computed once; O(N D^2))."""
        return self.cached("gram", lambda: self.X.T @ self.X)

    @property
    def scatter(self):
        """(D, D) centred scatter X_c^T X_c = X^T X - N mu mu^T (reuses `gram`)."""

        def f():
            m = self.mean
            s = self.gram - self.N * torch_outer(m, m)
            return 0.5 * (s + s.T)

        return self.cached("scatter", f)

    @property
    def small_side(self) -> str:
        """ "d" when D <= N (work with D x D matrices), else "n" (N x N Gram matrices)."""
        return "d" if self.D <= self.N else "n"

    @property
    def uncentered_eig(self):
        """Eigen-pieces of X^T X for LogME: (sigma (r,), proj2 (r, C)) where proj2[j, c] = (u_j^T y_c)^2 with
        u_j the left singular vectors of X and y_c the one-hot column of class c; only the numerically non-zero
        spectrum (r = rank) is kept. This is the one full eigendecomposition of the suite."""

        def f():
            if self.small_side == "d":
                w, v = _eigh(self.gram.cpu() if self.device.type == "cpu" else self.gram)
                w, v = w.to(self.device), v.to(self.device)
                keep = w > rank_tol(w, self.N, self.D)
                proj = v[:, keep].T @ self.class_sums.T  # v_j^T X^T y_c
                return w[keep], proj**2 / w[keep][:, None]
            k = self.X @ self.X.T
            w, u = _eigh(k)
            w, u = w.to(self.device), u.to(self.device)
            keep = w > rank_tol(w, self.N, self.D)
            proj = u[:, keep].T @ self.onehot
            return w[keep], proj**2

        return self.cached("uncentered_eig", f)

    @property
    def centered_eig(self):
        """Eigen-pieces of the centred scatter on the smaller side: (lam (r,), Bproj2 (r,)) where lam are the
        non-zero eigenvalues of X_c^T X_c and Bproj2[j] = ||B w_j||^2 with w_j the matching unit eigenvectors in
        feature space and B = `between_factor`. Used as the exact fallback when a Cholesky factor is not
        reliable (rank-deficient scatter: D >= N, constant or duplicated features)."""

        def f():
            if self.small_side == "d":
                w, v = _eigh(self.scatter)
                w, v = w.to(self.device), v.to(self.device)
                keep = w > rank_tol(w, self.N, self.D)
                bp = ((self.between_factor @ v[:, keep]) ** 2).sum(0)
                return w[keep], bp, v[:, keep]
            k = self.Xc @ self.Xc.T
            k = 0.5 * (k + k.T)
            w, u = _eigh(k)
            w, u = w.to(self.device), u.to(self.device)
            keep = w > rank_tol(w, self.N, self.D)
            # B = M X_c with M[k, i] = 1/sqrt(n_k) for i in class k; B w_j = M u_j sqrt(lam_j).
            m = self.onehot.T / self.counts.sqrt()[:, None]
            bp = ((m @ u[:, keep]) ** 2).sum(0) * w[keep]
            vecs = (self.Xc.T @ u[:, keep]) / w[keep].sqrt()[None, :]
            return w[keep], bp, vecs

        return self.cached("centered_eig", f)

    def scatter_cholesky(self):
        """(L, keep): Cholesky factor of the centred scatter restricted to the non-constant feature columns `keep`
        (D <= N), or None when that block is singular/ill-conditioned, in which case callers use `centered_eig`
        (pseudo-inverse semantics). Constant columns have zero variance and zero between-class spread, so
        dropping them does not change pseudo-inverse based quantities."""

        def f():
            torch = _torch()
            if self.small_side != "d":
                return None
            s = self.scatter
            diag = torch.diagonal(s)
            keep = diag > float(diag.max()) * self.D * np.finfo(np.float64).eps if diag.numel() else diag > 0
            if not bool(keep.any()):
                return None
            sub = s if bool(keep.all()) else s[keep][:, keep]
            L, info = torch.linalg.cholesky_ex(sub)
            if int(info) != 0:
                return None
            ld = torch.diagonal(L) ** 2
            # crude condition estimate from the pivots; beyond this a pinv and an inverse disagree
            if float(ld.min()) <= float(ld.max()) * 1e-10:
                return None
            return L, keep

        return self.cached("scatter_chol", f)

    def pca(self, n_components: int, *, variance: float | None = None):
        """Top principal directions of the centred features.

        Args:
            n_components: maximum number of components.
            variance: if given, keep the fewest components whose explained variance ratio reaches it (sklearn's
                `PCA(n_components=variance)` rule), capped at `n_components`.

        Returns:
            (eigenvalues (k,), directions (D, k)) sorted by decreasing variance. Exact for min(N, D) <=
            EXACT_PCA_MAX, otherwise a seeded randomized subspace iteration (4 power iterations).
        """
        torch = _torch()
        k_max = int(max(1, min(n_components, self.D, self.N)))
        total = (
            float(torch.diagonal(self.scatter).sum()) if self.small_side == "d" else float((self.Xc**2).sum())
        )
        if min(self.N, self.D) <= EXACT_PCA_MAX:
            lam, _, vecs = self.centered_eig
            order = torch.argsort(lam, descending=True)
            lam, vecs = lam[order][:k_max], vecs[:, order][:, :k_max]
        else:
            lam, vecs = self.cached(("rpca", k_max), lambda: self._randomized_pca(k_max))
        if variance is not None and total > 0 and lam.numel():
            ratio = torch.cumsum(lam, 0) / total
            k = (
                int(
                    torch.searchsorted(
                        ratio, torch.tensor([variance], dtype=ratio.dtype, device=ratio.device), right=True
                    )
                )
                + 1
            )
            k = min(k, lam.numel())
            lam, vecs = lam[:k], vecs[:, :k]
        return lam, vecs

    def _randomized_pca(self, k: int):
        torch = _torch()
        g = torch.Generator(device="cpu").manual_seed(self.seed)
        p = min(self.D, k + 10)
        omega = torch.randn(self.D, p, generator=g, dtype=torch.float64).to(self.device)
        if self.small_side == "d":
            op = self.scatter
            q, _ = torch.linalg.qr(op @ omega)
            for _ in range(4):
                q, _ = torch.linalg.qr(op @ q)
            t = q.T @ op @ q
        else:
            q, _ = torch.linalg.qr(self.Xc.T @ (self.Xc @ omega))
            for _ in range(4):
                q, _ = torch.linalg.qr(self.Xc.T @ (self.Xc @ q))
            t = (self.Xc @ q).T @ (self.Xc @ q)
        w, v = torch.linalg.eigh(0.5 * (t + t.T))
        order = torch.argsort(w, descending=True)[:k]
        return w[order].clamp_min(0), q @ v[:, order]

    # ----------------------------------------------------------------- folds
    def stratified_folds(self, folds: int):
        """(N,) fold id per sample: within each class a seeded permutation dealt round-robin into `folds`."""

        def f():
            torch = _torch()
            rng = np.random.default_rng(self.seed)
            y = self.y.cpu().numpy()
            out = np.empty(self.N, dtype=np.int64)
            offset = 0
            for c in range(self.C):
                idx = np.flatnonzero(y == c)
                idx = idx[rng.permutation(len(idx))]
                out[idx] = (np.arange(len(idx)) + offset) % folds
                offset += len(idx)  # rotate so singleton classes do not all land in fold 0
            return torch.from_numpy(out).to(self.device)

        return self.cached(("folds", folds), f)


def looks_like_probabilities(a: Any) -> bool:
    """True when source-head outputs already are probabilities, decided from the values.

    Rule: every value lies in [0, 1] and every row sums to between 0.5 and 1.5. Softmax outputs sum to 1; a
    dequantized uint8 softmax (scale 1/256) loses its many tiny entries to rounding, so its rows can sum to
    noticeably less than 1, hence the loose band. Logits of a head with Z > 2 classes essentially never all sit in
    [0, 1] with rows summing to about 1.
    """
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2 or arr.size == 0 or arr.shape[1] < 2 or not np.isfinite(arr).all():
        return False
    if float(arr.min()) < 0.0 or float(arr.max()) > 1.0 + 1e-6:
        return False
    rs = arr.sum(1)
    return bool(((rs >= 0.5) & (rs <= 1.5)).all())


def torch_outer(a, b):
    return a[:, None] * b[None, :]


def logsumexp_rows(t):
    """Row-wise log-sum-exp of a 2-D tensor."""
    torch = _torch()
    return torch.logsumexp(t, dim=1)


def finite_or_error(v: float, name: str) -> float:
    """Return `v` as a float, raising ScoreError when it is NaN or infinite."""
    v = float(v)
    if not math.isfinite(v):
        raise ScoreError(f"{name} is not finite for these inputs")
    return v
