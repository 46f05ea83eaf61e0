"""Combining ranking signals (priors, transferability scores, domain similarity) and the final probe ranking.

The weights live in ONE place, `WEIGHTS`. They are set from the ranking-quality benchmark
(benchmarks/ranking/RESULTS.md and analysis.md): over four real targets (Fashion-MNIST, Banking77, digits, FSDD) with
the offline zoos, leave-one-out kNN and nearest-class-mean accuracy were the only signals that ranked well on the
targets not used to choose them (weighted tau about 0.6-0.7), while LogME, SFDA, ETran-LDA, LEEP and the ImageNet prior
did well on some targets and failed on others (the ImageNet prior had weighted tau -0.53 on digits). The other
scores are still computed and reported, with weight 0. With 3-5 models per zoo tau is noisy: treat the predicted
ranking as a shortlist filter. The final ranking is by measured probe accuracy, except that candidates the paired
test cannot separate are ordered by `TIE_ORDER_SIGNAL` (and shown as tied).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

# signal name -> weight. Score names are those of advisor.scores; "prior_*" come from the catalog; "domain_*"
# from the dataset-similarity probe. A score not listed gets DEFAULT_SCORE_WEIGHT.
WEIGHTS: dict[str, float] = {
    "knn_loo": 1.0,  # leave-one-out kNN accuracy on the features: the best held-out signal in benchmarks/ranking
    "ncm_loo": 1.0,  # nearest-class-mean accuracy: second best, and it agrees with probes on small samples
}
# Every other score (logme, sfda, nleep, leep, ...) and the priors (prior_imagenet_top1, prior_log_params,
# domain_confidence) are reported but get weight 0: on held-out targets they were unreliable (see the module doc).
DEFAULT_SCORE_WEIGHT = 0.0
WEIGHTS_NOTE = (
    "weights from benchmarks/ranking (kNN + NCM accuracy; other signals reported with weight 0). "
    "The final ranking is by measured linear-probe accuracy, candidates the paired test cannot separate ordered by "
    "NCM-LOO (see final_order)."
)


# The final order: candidates the paired test cannot separate (a tie group) are ordered by this signal, not by their
# raw probe accuracies, whose differences inside a group are within the probe's noise. NCM-LOO is the single signal
# the ranking benchmark's dev targets favoured (benchmarks/ranking, "chosen on dev"); its standing on the held-out
# targets is recorded there. A group whose members do not all have it falls back to the predicted score.
TIE_ORDER_SIGNAL = "ncm_loo"
TIE_ORDER_NOTE = (
    "final order: paired tie groups of the probe (exact McNemar vs each group's leader, Holm-corrected), then "
    f"{TIE_ORDER_SIGNAL} inside a group (the predicted score where it is missing), then probe accuracy"
)


def weights_record() -> dict:
    """The weights and their status, as stored in every result."""
    return {
        "weights": dict(WEIGHTS),
        "default_score_weight": DEFAULT_SCORE_WEIGHT,
        "note": WEIGHTS_NOTE,
        "tie_order_signal": TIE_ORDER_SIGNAL,
        "final_order": TIE_ORDER_NOTE,
    }


def order_within_ties(
    groups: Mapping[str, int], inner: Mapping[str, float | None], accuracy: Mapping[str, float]
) -> list[str]:
    """Model ids in final order: tie group (1 first), then `inner` (higher first; missing last), then accuracy.

    Args:
        groups: model id -> paired tie group (`paired_tie_groups`).
        inner: model id -> the tie-order predictor's value (oriented, higher = better), or None.
        accuracy: model id -> probe accuracy (the last key, and the order when `inner` is missing everywhere).
    """

    def key(m: str) -> tuple[int, int, float, float]:
        v = inner.get(m)
        known = v is not None and math.isfinite(v)
        return (groups[m], 0 if known else 1, -(v if known and v is not None else 0.0), -accuracy[m])

    return sorted(groups, key=key)


def weight_of(signal: str) -> float:
    """The weight of a signal (listed, else DEFAULT_SCORE_WEIGHT for scores, 0 for unknown non-score signals)."""
    if signal in WEIGHTS:
        return WEIGHTS[signal]
    if signal.startswith(("prior_", "domain_")):
        return 0.0
    return DEFAULT_SCORE_WEIGHT


def zscores(values: Sequence[float | None]) -> list[float | None]:
    """Standardise the known values (mean 0, sd 1); None stays None; a constant signal gives zeros."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    if not known:
        return [None] * len(values)
    mu = float(np.mean(known))
    sd = float(np.std(known))
    return [
        None if v is None or not math.isfinite(v) else (0.0 if sd < 1e-12 else (v - mu) / sd) for v in values
    ]


def rank_scores(values: Sequence[float | None]) -> list[float | None]:
    """Centred average ranks mapped to z-like units (best = highest); None stays None."""
    idx = [i for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    out: list[float | None] = [None] * len(values)
    if not idx:
        return out
    from scipy.stats import rankdata

    r = rankdata([values[i] for i in idx])  # 1..m, ties averaged
    m = len(idx)
    sd = math.sqrt((m * m - 1) / 12) if m > 1 else 1.0
    for j, i in enumerate(idx):
        out[i] = float((r[j] - (m + 1) / 2) / sd)
    return out


@dataclass
class Prediction:
    """A candidate's combined predicted score: weighted mean of signal z-scores, and its uncertainty."""

    score: float | None
    uncertainty: float | None  # weighted sd of the signal z-scores (disagreement between signals)
    signals: dict[str, float]  # signal -> z (oriented: higher = better)
    rank: int | None = None

    def to_dict(self) -> dict:
        # the stored key order (not the field order)
        return {k: getattr(self, k) for k in ("score", "uncertainty", "rank", "signals")}


def combine(
    signals: Mapping[str, Mapping[str, float | None]],
    higher_is_better: Mapping[str, bool] | None = None,
    *,
    method: str = "zscore",
    weights: Mapping[str, float] | None = None,
) -> dict[str, Prediction]:
    """Combine per-candidate signals into one predicted score per candidate.

    Each signal is standardised across candidates (``zscore``) or turned into centred ranks (``rank``), oriented
    so that higher is better, and averaged with `WEIGHTS` over the signals a candidate has (missing signals do not
    count; weights are renormalised per candidate). Signals with fewer than 2 known values are dropped.

    Args:
        signals: ``{signal_name: {model_id: value or None}}``.
        higher_is_better: orientation per signal (default True).
        method: ``zscore`` or ``rank``.
        weights: override of `WEIGHTS` (for experiments; the product uses the default).

    Returns:
        ``{model_id: Prediction}`` with ranks 1..n by score (candidates with no signal get score None, no rank).
    """
    hib = dict(higher_is_better or {})
    models: list[str] = []
    for per in signals.values():
        for m in per:
            if m not in models:
                models.append(m)
    norm = zscores if method == "zscore" else rank_scores
    per_model: dict[str, dict[str, float]] = {m: {} for m in models}
    for name, per in signals.items():
        vals = [per.get(m) for m in models]
        if sum(v is not None and math.isfinite(v) for v in vals) < 2:
            continue
        sign = 1.0 if hib.get(name, True) else -1.0
        for m, z in zip(models, norm([None if v is None else sign * v for v in vals]), strict=True):
            if z is not None:
                per_model[m][name] = z
    out: dict[str, Prediction] = {}
    for m in models:
        zs = per_model[m]
        ws = {k: (weights[k] if weights and k in weights else weight_of(k)) for k in zs}
        total = sum(ws.values())
        if not zs or total <= 0:
            out[m] = Prediction(None, None, zs)
            continue
        mean = sum(ws[k] * zs[k] for k in zs) / total
        var = sum(ws[k] * (zs[k] - mean) ** 2 for k in zs) / total
        out[m] = Prediction(float(mean), float(math.sqrt(var)), zs)
    scored = {m: p.score for m, p in out.items() if p.score is not None}
    ranked = sorted((m for m in models if m in scored), key=lambda m: -scored[m])
    for i, m in enumerate(ranked, 1):
        out[m].rank = i
    return out


def pareto_front(
    points: Mapping[str, tuple[float | None, float | None]], spread: Mapping[str, float] | None = None
) -> set[str]:
    """Ids on the front of (cost lower-better, value higher-better); points with a missing coordinate are off it.

    ``spread`` (per id, e.g. a latency IQR) widens each cost into a band: a point is cheaper only when its band
    lies wholly below the other's, so a difference inside the measurement spread neither puts a less accurate
    point on the front nor takes a more accurate one off it.
    """
    pts = {k: (c, a) for k, (c, a) in points.items() if c is not None and a is not None}
    half = {k: float((spread or {}).get(k) or 0.0) / 2 for k in pts}

    def cheaper(k2: str, k: str) -> bool:  # k2's cost band wholly below k's
        return pts[k2][0] + half[k2] < pts[k][0] - half[k]

    front = set()
    for k, (_, a) in pts.items():
        dominated = any(
            a2 >= a and not cheaper(k, k2) and (a2 > a or cheaper(k2, k))
            for k2, (_, a2) in pts.items()
            if k2 != k
        )
        if not dominated:
            front.add(k)
    return front


def tie_groups(results: Sequence[tuple[str, float, tuple[float, float] | None]]) -> dict[str, int]:
    """Group models whose accuracy intervals overlap the group leader's (sorted by accuracy, best first).

    The fallback when out-of-fold predictions are unavailable; `paired_tie_groups` is the test to use.

    Args:
        results: (model_id, accuracy, (ci_low, ci_high) or None).

    Returns:
        ``{model_id: group}`` with group 1 holding the best model.
    """
    order = sorted(results, key=lambda t: -t[1])
    groups: dict[str, int] = {}
    g = 0
    leader_low = None
    for mid, acc, ci in order:
        lo, hi = ci if ci else (acc, acc)
        if leader_low is None or hi < leader_low:
            g += 1
            leader_low = lo
        groups[mid] = g
    return groups


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[float, int, int]:
    """Exact (binomial) McNemar test of two classifiers on the same samples.

    Args:
        correct_a, correct_b: boolean arrays, sample-aligned: whether each classifier got each sample right.

    Returns:
        ``(two-sided p-value, n_a_only, n_b_only)``: the discordant counts (A right and B wrong, and the
        reverse); p is 1.0 when there is no discordant pair.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"McNemar needs sample-aligned predictions, got {a.shape} and {b.shape}")
    n01, n10 = int((a & ~b).sum()), int((~a & b).sum())
    if n01 + n10 == 0:
        return 1.0, n01, n10
    from scipy.stats import binomtest

    return float(binomtest(n01, n01 + n10, 0.5).pvalue), n01, n10


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given; monotone, capped at 1)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


@dataclass
class PairedCandidate:
    """One probed candidate for the paired tie test.

    ``ids``/``y``/``pred`` are the out-of-fold predictions (row-aligned: sample id, true label, predicted
    label); None when unavailable (then the interval-overlap rule is used).
    """

    model_id: str
    accuracy: float
    ci: tuple[float, float] | None = None
    ids: Sequence[str] | None = None
    y: Sequence[int] | None = None
    pred: Sequence[int] | None = None


@dataclass
class TieResult:
    """The tie verdict for one candidate against its group's leader (the best of the group)."""

    group: int
    leader: str
    method: str  # "leader" | "mcnemar-holm" | "ci-overlap"
    p_value: float | None = None  # raw exact McNemar p vs the leader
    p_holm: float | None = None  # Holm-adjusted over the comparisons with the same leader
    n_shared: int | None = None  # samples both were scored on (aligned by id)
    discordant: tuple[int, int] | None = None  # (leader right only, candidate right only)

    def to_dict(self) -> dict:
        return asdict(self) | {"discordant": list(self.discordant) if self.discordant else None}


def _aligned_correct(a: PairedCandidate, b: PairedCandidate) -> tuple[np.ndarray, np.ndarray] | None:
    """Correctness vectors of `a` and `b` on their shared sample ids (None when predictions are missing)."""
    if a.ids is None or a.y is None or a.pred is None or b.ids is None or b.y is None or b.pred is None:
        return None
    if not (len(a.ids) == len(a.y) == len(a.pred)) or not (len(b.ids) == len(b.y) == len(b.pred)):
        return None
    if list(a.ids) == list(b.ids):
        ya, pa, yb, pb = (np.asarray(v) for v in (a.y, a.pred, b.y, b.pred))
    else:  # different rows (e.g. a sample one model could not decode): align by sample id
        pos_b = {sid: i for i, sid in enumerate(b.ids)}
        ia = [i for i, sid in enumerate(a.ids) if sid in pos_b]
        ib = [pos_b[a.ids[i]] for i in ia]
        if not ia:
            return None
        ya, pa = np.asarray(a.y)[ia], np.asarray(a.pred)[ia]
        yb, pb = np.asarray(b.y)[ib], np.asarray(b.pred)[ib]
    if not np.array_equal(ya, yb):
        return None  # not the same labels for the same ids: not comparable
    scored = (pa >= 0) & (pb >= 0)  # -1: not evaluated (e.g. the train part of a given split)
    if not scored.any():
        return None
    return pa[scored] == ya[scored], pb[scored] == yb[scored]


def paired_tie_groups(candidates: Sequence[PairedCandidate], *, alpha: float = 0.05) -> dict[str, TieResult]:
    """Tie groups from paired tests on the shared out-of-fold predictions.

    The best candidate (highest accuracy) leads group 1; every other candidate is compared with it by an exact
    McNemar test on the samples both were scored on, Holm-corrected over those comparisons; the ones not
    significantly different at `alpha` are tied with it (same group). The best of the rest leads group 2, and
    so on. A comparison without usable predictions falls back to the interval-overlap rule (``method``
    "ci-overlap": tied when the candidate's upper bound reaches the leader's lower bound).

    Returns:
        ``{model_id: TieResult}``; each record's test (p-values, method, leader) is the comparison with #1, its
        ``group`` the final grouping.
    """
    remaining = sorted(candidates, key=lambda c: -c.accuracy)
    out: dict[str, TieResult] = {}
    g = 0
    while remaining:
        g += 1
        lead, rest = remaining[0], remaining[1:]
        if g == 1:
            out[lead.model_id] = TieResult(group=g, leader=lead.model_id, method="leader")
        else:  # keep the record of its comparison with #1; only the group changes
            out[lead.model_id].group = g
        verdicts: dict[str, TieResult] = {}
        tested: list[tuple[PairedCandidate, float, int, tuple[int, int]]] = []
        for c in rest:
            al = _aligned_correct(lead, c)
            if al is None:
                lo_lead = (lead.ci or (lead.accuracy, lead.accuracy))[0]
                hi = (c.ci or (c.accuracy, c.accuracy))[1]
                verdicts[c.model_id] = TieResult(
                    group=g if hi >= lo_lead else 0, leader=lead.model_id, method="ci-overlap"
                )
                continue
            p, n_lead, n_c = mcnemar_exact(al[0], al[1])
            tested.append((c, p, len(al[0]), (n_lead, n_c)))
        adj = holm([t[1] for t in tested])
        for (c, p, n_sh, disc), ph in zip(tested, adj, strict=True):
            verdicts[c.model_id] = TieResult(
                group=g if ph >= alpha else 0,
                leader=lead.model_id,
                method="mcnemar-holm",
                p_value=p,
                p_holm=ph,
                n_shared=n_sh,
                discordant=disc,
            )
        for mid, v in verdicts.items():
            if g == 1:
                out[mid] = v
            elif v.group:
                out[mid].group = g
        remaining = [c for c in rest if not verdicts[c.model_id].group]
    return out


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman rank correlation (None when undefined)."""
    if len(a) < 2:
        return None
    from scipy.stats import spearmanr

    r = spearmanr(a, b).statistic
    return None if r is None or not math.isfinite(r) else float(r)
