"""Stage 6: the final ranking: paired tie groups of the probe, `TIE_ORDER_SIGNAL` inside a group, the Pareto front,
the signals' agreement and the reasons."""

from __future__ import annotations

import math

from advisor.recommend.agreement import signal_agreement
from advisor.recommend.config import ProgressFn
from advisor.recommend.plan import _device_kind
from advisor.recommend.ranking import (
    TIE_ORDER_SIGNAL,
    PairedCandidate,
    order_within_ties,
    paired_tie_groups,
    pareto_front,
)
from advisor.recommend.reasons import build_reasons
from advisor.recommend.records import ProbeRecord
from advisor.recommend.results import CandidateResult
from advisor.recommend.state import RunState


def rank(state: RunState, say: ProgressFn) -> RunState:
    """Rank the probed candidates; mark the others of the shortlist's pool as screened, with why."""
    results, notes = state.results, state.notes
    probed = [results[m] for m in state.short if results[m].probe]
    probed.sort(key=_rank_key)
    # "tied": exact McNemar on the shared out-of-fold predictions vs the leader, Holm over those comparisons
    ties = paired_tie_groups(
        [
            PairedCandidate(
                c.model_id,
                _probe(c)["accuracy"],
                _ci(c),
                *(state.oof[c.model_id] if c.model_id in state.oof else (None, None, None)),
            )
            for c in probed
        ]
    )
    if any(t.method == "ci-overlap" for t in ties.values()):
        notes.append(
            "tie groups: out-of-fold predictions unavailable for "
            + ", ".join(sorted(m for m, t in ties.items() if t.method == "ci-overlap"))
            + "; those were grouped by overlapping 95 % intervals instead of a paired test"
        )
    # inside a tie group the probe cannot tell the candidates apart: order them by the validated predictor
    by_id = {c.model_id: c for c in probed}
    order = order_within_ties(
        {m: t.group for m, t in ties.items()},
        _tie_order_values(probed),
        {c.model_id: _probe(c)["accuracy"] for c in probed},
    )
    probed = [by_id[m] for m in order]
    front = pareto_front(
        {c.model_id: (c.latency_ms, _probe(c)["accuracy"]) for c in probed},
        {c.model_id: float((c.bench or {}).get("latency_ms_iqr") or 0.0) for c in probed},
    )
    for r, c in enumerate(probed, 1):
        p = _probe(c)
        c.rank, c.status = r, "ranked"
        c.tie_group = ties[c.model_id].group
        p["tie_test"] = ties[c.model_id].to_dict()
        c.pareto = c.model_id in front
        if p.get("c_at_grid_edge"):
            notes.append(f"{c.model_id}: " + "; ".join(p.get("notes") or ["probe C at the grid edge"]))
    kind = _device_kind(state.cfg.device)
    build_reasons(probed, "GPU" if kind == "cuda" else kind.upper())
    state.agreement = signal_agreement(probed)
    if state.agreement.get("level") == "disagree":
        notes.append(state.agreement["summary"])
    for m in state.alive:
        c = results[m]
        if c.rank is None and c.status not in ("failed", "excluded"):
            c.status = "screened"
            c.reasons = [
                f"not shortlisted: predicted rank {c.predicted.get('rank')} (score "
                f"{(c.predicted.get('score') or 0):+.2f}); probes ran on the top {len(state.short)}"
            ]
    state.probed = probed
    return state


def _tie_order_values(probed: list[CandidateResult]) -> dict[str, float | None]:
    """`TIE_ORDER_SIGNAL` per candidate (oriented), or the predicted score for all when any candidate lacks it."""
    vals: dict[str, float | None] = {}
    for c in probed:
        rec = c.scores.get(TIE_ORDER_SIGNAL) or {}
        v = rec.get("value") if rec.get("applicable", True) else None
        vals[c.model_id] = (
            None if v is None else (float(v) if rec.get("higher_is_better", True) else -float(v))
        )
    if any(v is None or not math.isfinite(v) for v in vals.values()):
        return {c.model_id: c.predicted.get("score") for c in probed}
    return vals


def _probe(c: CandidateResult) -> ProbeRecord:
    assert c.probe is not None
    return c.probe


def _ci(c: CandidateResult) -> tuple[float, float]:
    lo, hi = _probe(c)["accuracy_ci"]
    return (lo, hi)


def _rank_key(c: CandidateResult) -> tuple[float, float, int]:
    return (
        -_probe(c)["accuracy"],
        c.latency_ms if c.latency_ms is not None else math.inf,
        c.predicted.get("rank") or 10**9,
    )
