"""Library entry points of the score suite: `compute_scores` (with bootstrap intervals) and npz input loading."""

from __future__ import annotations

import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from advisor.errors import ScoreError
from advisor.scores.prepare import Prepared
from advisor.scores.registry import ScoreResult, get_scorer, list_scorers


def resolve_metrics(metrics: str | Sequence[str]) -> list[str]:
    """Turn "all", "logme,leep" or a list of names into registered names (order kept, duplicates dropped).

    Raises:
        ScoreError: on an unknown name (with close-name suggestions) or an empty selection.
    """
    if isinstance(metrics, str):
        names = list_scorers() if metrics.strip().lower() == "all" else [m for m in metrics.split(",")]
    else:
        names = list(metrics)
    out: list[str] = []
    for m in names:
        m = m.strip().lower()
        if not m:
            continue
        if m == "all":
            out.extend(n for n in list_scorers() if n not in out)
            continue
        spec = get_scorer(m)
        if spec.name not in out:
            out.append(spec.name)
    if not out:
        raise ScoreError("no metrics selected", hint="pass --metrics all or e.g. --metrics logme,leep")
    return out


# Scores that invert (or take log-determinants of) the D x D feature covariance without regularisation: with
# D > N/2 the within-class covariance is (near) singular and they saturate (H-score -> C - 1, TransRate and
# in-sample SFDA grow with D for any features, GBC without PCA -> 0), so the value says nothing about transfer.
HIGH_DIM_DEGENERATE = frozenset({"hscore", "transrate", "sfda", "gbc_spherical"})
# Scores cheap enough to recompute once with shuffled labels (the shuffled-label control).
CONTROLLED = frozenset(
    {"leep", "nce", "hscore", "hscore_shrinkage", "transrate", "gbc", "gbc_spherical", "knn_loo", "ncm_loo"}
)  # not logme/sfda/nleep/parc/etran: their label-dependent eigen-/EM-work would double the cost
# Cached pieces of `Prepared` that do not depend on the labels, shared with the shuffled-label copy.
LABEL_FREE_CACHE = ("gram", "mean", "Xc", "scatter", "scatter_chol")
# Separation rule of the control: the real value must beat the shuffled-label value, in the score's direction,
# by more than this fraction of the larger magnitude of the two.
CONTROL_MARGIN = 0.05


def high_dim_reason(name: str, n: int, d: int) -> str | None:
    """The D-vs-N rule: why `name` is degenerate for N samples of dimension D (None when it is not)."""
    if name in HIGH_DIM_DEGENERATE and d > n / 2:
        return (
            f"degenerate: D = {d} > N/2 = {n / 2:g} (unregularised covariance; the value saturates for any "
            "features); see hscore_shrinkage, sfda_cv or gbc"
        )
    return None


def control_reason(real: float, shuffled: float, higher_is_better: bool) -> str | None:
    """The shuffled-label rule: a reason when `real` is not separated from the shuffled-label value."""
    gain = (real - shuffled) if higher_is_better else (shuffled - real)
    if gain > CONTROL_MARGIN * max(abs(real), abs(shuffled)) + 1e-12:
        return None
    return (
        f"degenerate: not separated from the shuffled-label control ({real:.4g} vs {shuffled:.4g} with labels "
        f"shuffled; needs a {CONTROL_MARGIN:.0%} margin)"
    )


def stratified_resample(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap indices drawn with replacement *within* each class, so every class keeps its size (and stays
    present). Returned sorted by class order of first appearance for reproducibility."""
    labels = np.asarray(labels)
    out = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        out.append(rng.choice(members, size=len(members), replace=True))
    return np.concatenate(out)


def _run_one(name: str, prep: Prepared, options: dict) -> tuple[float | None, str | None]:
    spec = get_scorer(name)
    if "probs" in spec.needs and prep.P is None:
        return None, "needs source-model predictions: pass logits or probs"
    try:
        return float(spec.fn(prep, **options.get(name, {}))), None
    except ScoreError as e:
        return None, e.message


def compute_scores(
    features,
    labels,
    *,
    logits=None,
    probs=None,
    metrics: str | Sequence[str] = "all",
    device: str = "cpu",
    bootstrap: int = 0,
    seed: int = 0,
    options: dict[str, dict] | None = None,
    flag_degenerate: bool = True,
) -> dict[str, ScoreResult]:
    """Compute transferability scores of one model's features on a labelled target set.

    Args:
        features: (N, D) features (numpy or torch, any float dtype; computed in float64).
        labels: (N,) integer labels; negative labels (unlabelled rows) are dropped.
        logits: optional (N, Z) source-head logits; enables LEEP/NCE.
        probs: optional (N, Z) source-head probabilities (used when logits are absent).
        metrics: "all", a comma-separated string or a list of registered names.
        device: torch device ("cpu", "cuda", ...).
        bootstrap: number of stratified bootstrap replicates for a 95 % percentile interval (0 = none).
        seed: seed for bootstrap resampling and the seeded pieces of the metrics.
        options: per-metric keyword arguments, e.g. {"sfda": {"folds": 0}}.
        flag_degenerate: flag values that are not meaningful for the data (`high_dim_reason`; and, for the cheap
            `CONTROLLED` scores, one recomputation with labels shuffled by `seed`, `control_reason`): they come
            back with applicable=False and `degenerate_reason` (value kept for display).

    Returns:
        metric name -> ScoreResult. Metrics whose inputs are missing (no logits/probs) or that are undefined for
        the data (e.g. one class) come back with applicable=False and a reason.

    Raises:
        ScoreError: on invalid inputs (shapes, NaN) or unknown metric names.

    Note: bootstrap replicates contain duplicated rows, which flatters fit-based scores (LogME, SFDA, kNN), so
    the interval can sit beside the point value; use it to compare models on the same replicates' spread, not as
    an unbiased interval for the value itself.
    """
    names = resolve_metrics(metrics)
    options = options or {}
    prep = Prepared(features, labels, logits=logits, probs=probs, device=device, seed=seed)
    results: dict[str, ScoreResult] = {}
    for name in names:
        spec = get_scorer(name)
        t0 = time.perf_counter()
        value, reason = _run_one(name, prep, options)
        sec = time.perf_counter() - t0
        results[name] = ScoreResult(name, value, spec.higher_is_better, value is not None, reason, None, sec)
    if flag_degenerate:
        _flag_degenerate(results, prep, options, device, seed)
    if bootstrap and bootstrap > 0:
        live = [n for n in names if results[n].applicable]
        samples: dict[str, list[float]] = {n: [] for n in live}
        rng = np.random.default_rng(seed)
        f_np, y_np = prep.X.cpu().numpy(), prep.y.cpu().numpy()
        p_np = prep.P.cpu().numpy() if prep.P is not None else None
        for _ in range(int(bootstrap)):
            idx = stratified_resample(y_np, rng)
            sub = Prepared(
                f_np[idx], y_np[idx], probs=None if p_np is None else p_np[idx], device=device, seed=seed
            )
            for n in live:
                v, _ = _run_one(n, sub, options)
                if v is not None and np.isfinite(v):
                    samples[n].append(v)
        for n in live:
            if samples[n]:
                lo, hi = np.percentile(samples[n], [2.5, 97.5])
                r = results[n]
                results[n] = ScoreResult(
                    r.name, r.value, r.higher_is_better, True, r.reason, (float(lo), float(hi)), r.seconds
                )
    return results


def _flag_degenerate(
    results: dict[str, ScoreResult], prep: Prepared, options: dict, device: str, seed: int
) -> None:
    import dataclasses

    shuffled: Prepared | None = None
    for name, r in list(results.items()):
        if not r.applicable or r.value is None:
            continue
        why = high_dim_reason(name, prep.N, prep.D)
        if why is None and name in CONTROLLED:
            if shuffled is None:
                y = prep.y.cpu().numpy()
                perm = np.random.default_rng([seed, 11]).permutation(len(y))
                p_np = prep.P.cpu().numpy() if prep.P is not None else None
                shuffled = Prepared(prep.X.cpu().numpy(), y[perm], probs=p_np, device=device, seed=seed)
                for (
                    key
                ) in LABEL_FREE_CACHE:  # reuse the label-independent D x D work (gram, scatter, Cholesky)
                    if key in prep._cache:
                        shuffled._cache[key] = prep._cache[key]
            v, _ = _run_one(name, shuffled, options)
            if v is not None and np.isfinite(v):
                why = control_reason(r.value, v, r.higher_is_better)
        if why is not None:
            results[name] = dataclasses.replace(r, applicable=False, reason=why, degenerate_reason=why)


def load_score_inputs(path: str | Path) -> dict[str, np.ndarray]:
    """Read an .npz with `features` (N, D), `labels` (N,) and optionally `logits` or `probs` (N, Z).

    Loaded with allow_pickle=False (never unpickles).

    Raises:
        ScoreError: naming the file when it is missing, not an npz, holds object arrays, lacks keys or has
            mismatched shapes.
    """
    p = Path(path)
    if not p.is_file():
        raise ScoreError(f"{p}: file not found", hint="pass an .npz with features and labels")
    if not zipfile.is_zipfile(p):
        raise ScoreError(
            f"{p}: not an .npz (zip) file", hint="create it with np.savez(path, features=..., labels=...)"
        )
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            missing = [k for k in ("features", "labels") if k not in keys]
            if missing:
                raise ScoreError(
                    f"{p}: missing array(s) {', '.join(missing)} (found: {', '.join(sorted(keys)) or 'none'})",
                    hint="save with np.savez(path, features=..., labels=..., logits=...)",
                )
            out = {k: z[k] for k in ("features", "labels", "logits", "probs") if k in keys}
    except ScoreError:
        raise
    except ValueError:  # object arrays refuse to load without pickle
        raise ScoreError(
            f"{p}: holds object arrays, which are never loaded (no pickle)", hint="store plain numeric arrays"
        ) from None
    except KeyError as e:
        raise ScoreError(f"{p}: unreadable member {e}", hint="recreate it with np.savez") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ScoreError(
            f"{p}: not a readable .npz file ({type(e).__name__})", hint="create it with np.savez"
        ) from None
    f, y = out["features"], out["labels"]
    if f.ndim != 2:
        raise ScoreError(f"{p}: features must be 2-D (N, D), got shape {f.shape}")
    if y.ndim != 1 or y.shape[0] != f.shape[0]:
        raise ScoreError(f"{p}: labels must have shape ({f.shape[0]},) to match features, got {y.shape}")
    for k in ("logits", "probs"):
        if k in out and (out[k].ndim != 2 or out[k].shape[0] != f.shape[0]):
            raise ScoreError(f"{p}: {k} must be (N, Z) with N={f.shape[0]}, got {out[k].shape}")
    for k, a in out.items():
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise ScoreError(f"{p}: {k} has non-numeric dtype {a.dtype}")
    return out


def score_file(
    path: str | Path,
    *,
    metrics: str | Sequence[str] = "all",
    device: str = "cpu",
    bootstrap: int = 0,
    seed: int = 0,
) -> dict[str, ScoreResult]:
    """`load_score_inputs` + `compute_scores`; errors name the file."""
    data = load_score_inputs(path)
    try:
        return compute_scores(
            data["features"],
            data["labels"],
            logits=data.get("logits"),
            probs=data.get("probs"),
            metrics=metrics,
            device=device,
            bootstrap=bootstrap,
            seed=seed,
        )
    except ScoreError as e:
        if str(path) in e.message:
            raise
        raise type(e)(f"{path}: {e.message}", hint=e.hint) from None  # keeps a usage error a usage error
