"""How much the ranking signals agree on the probed shortlist: the confidence of the verdict.

The probe is the measured figure; LogME and nearest-class-mean accuracy (NCM-LOO) are two transferability scores
of different kinds (an evidence bound, a classifier accuracy) computed on the same features. When all three order
the shortlist alike and each one's top pick is among the candidates tied for best, the verdict does not hang on
one signal; when they disagree, the report says so plainly, because then the ranking rests on the probe alone,
whose differences between close candidates are within its own noise (benchmarks/ranking/analysis.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from advisor.recommend.results import CandidateResult

PROBE = "probe_accuracy"
AGREEMENT_SIGNALS: tuple[str, ...] = ("logme", "ncm_loo")
SIGNAL_LABELS = {PROBE: "probe", "logme": "LogME", "ncm_loo": "NCM-LOO"}
AGREE_TAU = 0.5  # mean Kendall tau-b at or above which (with every top pick tied for best) the signals agree
DISAGREE_TAU = 0.2  # below which they disagree
MIN_MODELS = 3  # with 2 models a rank correlation is +-1 whatever the evidence


def kendall_tau_b(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Kendall's tau-b of two equally long sequences; None when either is constant."""
    if len(a) != len(b):
        raise ValueError(f"kendall_tau_b needs equal lengths, got {len(a)} and {len(b)}")
    if len(set(a)) < 2 or len(set(b)) < 2:
        return None
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def _values(probed: Sequence[CandidateResult]) -> dict[str, dict[str, float]]:
    """Oriented values (higher = better) per signal, for the candidates that have them."""
    out: dict[str, dict[str, float]] = {PROBE: {}}
    for c in probed:
        if c.probe_accuracy is not None:
            out[PROBE][c.model_id] = float(c.probe_accuracy)
    for name in AGREEMENT_SIGNALS:
        per: dict[str, float] = {}
        for c in probed:
            rec = c.scores.get(name) or {}
            v = rec.get("value")
            if rec.get("applicable", True) and v is not None and math.isfinite(float(v)):
                per[c.model_id] = float(v) if rec.get("higher_is_better", True) else -float(v)
        out[name] = per
    return out


def _top(per: Mapping[str, float], order: Sequence[str]) -> str | None:
    """The highest-valued model; ties broken by the final order (the earlier one)."""
    if not per:
        return None
    pos = {m: i for i, m in enumerate(order)}
    return max(per, key=lambda m: (per[m], -pos.get(m, len(pos))))


def signal_agreement(probed: Sequence[CandidateResult]) -> dict[str, Any]:
    """The agreement record of the probed candidates (in final rank order, tie groups set).

    Returns:
        ``{n_models, signals, pairs: [{a, b, tau, n}], mean_tau, top_picks: {signal: id}, top_tied_for_best:
        {signal: bool}, level ("agree" | "partly" | "disagree" | "not measured"), summary}``.
    """
    order = [c.model_id for c in probed]
    best_group = {c.model_id for c in probed if c.tie_group == 1} or set(order[:1])
    vals = _values(probed)
    used = [s for s in (PROBE, *AGREEMENT_SIGNALS) if len(vals[s]) >= MIN_MODELS]
    rec: dict[str, Any] = {"n_models": len(order), "signals": used, "pairs": [], "mean_tau": None}
    rec["top_picks"] = {s: _top(vals[s], order) for s in used}
    rec["top_tied_for_best"] = {s: m in best_group for s, m in rec["top_picks"].items() if m is not None}
    if len(order) < MIN_MODELS or PROBE not in used or len(used) < 2:
        rec["level"] = "not measured"
        rec["summary"] = (
            f"signal agreement not measured: it needs at least {MIN_MODELS} probed candidates with the probe and "
            f"LogME or NCM-LOO (have {len(order)})"
        )
        return rec
    taus = []
    for i, a in enumerate(used):
        for b in used[i + 1 :]:
            shared = [m for m in order if m in vals[a] and m in vals[b]]
            tau = (
                kendall_tau_b([vals[a][m] for m in shared], [vals[b][m] for m in shared])
                if len(shared) >= MIN_MODELS
                else None
            )
            rec["pairs"].append({"a": a, "b": b, "tau": tau, "n": len(shared)})
            if tau is not None:
                taus.append(tau)
    mean = sum(taus) / len(taus) if taus else None
    rec["mean_tau"] = mean
    rec["level"], rec["summary"] = _verdict(mean, rec["top_tied_for_best"], len(order))
    return rec


def _verdict(mean: float | None, tops: Mapping[str, bool], n: int) -> tuple[str, str]:
    names = ", ".join(SIGNAL_LABELS.get(s, s) for s in tops)
    outside = [SIGNAL_LABELS.get(s, s) for s, ok in tops.items() if not ok and s != PROBE]
    if mean is None:
        return "not measured", "signal agreement not measured: the signals are constant over the shortlist"
    where = f"mean Kendall τ {mean:+.2f} over {n} probed models"
    if mean >= AGREE_TAU and not outside:
        return "agree", f"the signals agree ({names}: {where}; each one's top pick is tied for best)"
    non_probe = [s for s in tops if s != PROBE]
    tail = (
        f"; {' and '.join(outside)} put{'s' if len(outside) == 1 else ''} another model first"
        if outside
        else ""
    )
    if mean < DISAGREE_TAU or (non_probe and len(outside) == len(non_probe)):
        return "disagree", (
            f"the signals disagree ({names}: {where}{tail}): the order rests on the probe alone, treat it as "
            "tentative and confirm the top candidates (e.g. --finetune-top 2)"
        )
    return "partly", f"the signals partly agree ({names}: {where}{tail})"
