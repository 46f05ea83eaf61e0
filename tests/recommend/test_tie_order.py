"""The final order (issue 18): candidates the paired test cannot separate are ordered by the tie-order signal and
shown as tied; a candidate is called best only when the test separates it; the probe / LogME / NCM agreement is
measured, stored and rendered."""

from __future__ import annotations

import json

import numpy as np
import pytest

from advisor.probe.stats import wilson_ci
from advisor.recommend.agreement import kendall_tau_b, signal_agreement
from advisor.recommend.config import RunConfig
from advisor.recommend.ranking import TIE_ORDER_SIGNAL, order_within_ties, weights_record
from advisor.recommend.results import CandidateResult, RecommendResults
from advisor.recommend.stages.rank import rank
from advisor.recommend.state import RunState

N = 200


def _right(n_right: int, offset: int = 0) -> np.ndarray:
    r = np.zeros(N, dtype=bool)
    r[offset : offset + n_right] = True
    return r


def _state(models: dict[str, tuple[np.ndarray, float | None, float | None]]) -> RunState:
    """models: id -> (correct per sample, ncm_loo value or None, logme value or None)."""
    state = RunState(cfg=RunConfig(data="x"))
    ids = [f"s{i}" for i in range(N)]
    y = np.zeros(N, dtype=np.int64)
    for mid, (right, ncm, lme) in models.items():
        c = CandidateResult(model_id=mid, status="scored", stage="probe")
        k = int(right.sum())
        c.probe = {"accuracy": k / N, "accuracy_ci": list(wilson_ci(k, N))}  # type: ignore[typeddict-item]
        if ncm is not None:
            c.scores["ncm_loo"] = {
                "name": "ncm_loo",
                "value": ncm,
                "higher_is_better": True,
                "applicable": True,
            }
        if lme is not None:
            c.scores["logme"] = {"name": "logme", "value": lme, "higher_is_better": True, "applicable": True}
        c.predicted = {"score": 0.0, "rank": len(state.results) + 1}  # type: ignore[typeddict-item]
        state.results[mid] = c
        state.oof[mid] = (ids, y, list(np.where(right, 0, 1)))
    state.short = list(models)
    state.alive = list(models)
    return state


def test_order_within_ties_groups_first_then_signal_then_accuracy():
    groups = {"a": 1, "b": 1, "c": 2, "d": 2, "e": 1}
    inner = {"a": 0.2, "b": 0.9, "c": 0.5, "d": None, "e": None}
    acc = {"a": 0.95, "b": 0.90, "c": 0.80, "d": 0.85, "e": 0.99}
    # group 1: b (0.9) > a (0.2) > e (no signal: last in its group, whatever its accuracy); group 2: c, then d
    assert order_within_ties(groups, inner, acc) == ["b", "a", "e", "c", "d"]
    assert order_within_ties(groups, dict.fromkeys(groups), acc) == ["e", "a", "b", "d", "c"]


def test_tied_candidates_are_ordered_by_the_signal_and_not_called_best():
    # A 80 %, B 79 % (tied: one discordant sample), C 55 % (separated). NCM prefers B.
    state = _state(
        {
            "m:a": (_right(160), 0.70, 1.0),
            "m:b": (_right(158), 0.75, 1.2),
            "m:c": (_right(110), 0.40, 0.1),
        }
    )
    out = rank(state, lambda _m: None)
    order = [c.model_id for c in out.probed]
    assert order == ["m:b", "m:a", "m:c"]
    assert [c.rank for c in out.probed] == [1, 2, 3]
    assert [c.tie_group for c in out.probed] == [1, 1, 2]
    head = out.probed[0].reasons[0]
    assert head.startswith("tied for best with 1 other (the paired test cannot separate them)")
    assert f"{TIE_ORDER_SIGNAL} 75.0 %" in head
    assert not head.startswith("best")
    assert out.probed[1].reasons[0].startswith("statistically tied with #1")


def test_a_separated_leader_is_called_best():
    state = _state(
        {"m:a": (_right(180), 0.5, 1.0), "m:b": (_right(120), 0.9, 2.0), "m:c": (_right(100), 0.1, 0.0)}
    )
    out = rank(state, lambda _m: None)
    assert [c.model_id for c in out.probed] == ["m:a", "m:b", "m:c"]  # the signal never overrides the test
    assert out.probed[0].reasons[0].startswith("best probe accuracy")
    assert "separates it from the rest" in out.probed[0].reasons[0]


def test_missing_signal_falls_back_to_the_predicted_score():
    state = _state(
        {"m:a": (_right(160), None, 1.0), "m:b": (_right(159), 0.9, 1.2), "m:c": (_right(100), 0.1, 0.1)}
    )
    state.results["m:a"].predicted = {"score": 2.0, "rank": 1}  # type: ignore[typeddict-item]
    state.results["m:b"].predicted = {"score": -1.0, "rank": 2}  # type: ignore[typeddict-item]
    out = rank(state, lambda _m: None)
    assert [c.model_id for c in out.probed][:2] == ["m:a", "m:b"]
    assert "first by the predicted score" in out.probed[0].reasons[0]


def test_kendall_tau_b_known_values():
    assert kendall_tau_b([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    from scipy.stats import kendalltau

    a, b = [1, 2, 2, 3, 5], [2, 1, 3, 3, 4]
    assert kendall_tau_b(a, b) == pytest.approx(kendalltau(a, b).statistic)
    assert kendall_tau_b([1, 1, 1], [1, 2, 3]) is None


def test_agreement_levels():
    agree = _state(
        {
            "m:a": (_right(180), 0.9, 3.0),
            "m:b": (_right(140), 0.7, 2.0),
            "m:c": (_right(100), 0.5, 1.0),
            "m:d": (_right(60), 0.3, 0.0),
        }
    )
    rec = rank(agree, lambda _m: None).agreement
    assert rec["level"] == "agree" and rec["mean_tau"] == pytest.approx(1.0)
    assert rec["top_picks"] == {"probe_accuracy": "m:a", "logme": "m:a", "ncm_loo": "m:a"}
    assert len(rec["pairs"]) == 3 and all(p["n"] == 4 for p in rec["pairs"])

    disagree = _state(
        {
            "m:a": (_right(180), 0.3, 0.0),
            "m:b": (_right(140), 0.5, 1.0),
            "m:c": (_right(100), 0.7, 2.0),
            "m:d": (_right(60), 0.9, 3.0),
        }
    )
    out = rank(disagree, lambda _m: None)
    rec = out.agreement
    assert rec["level"] == "disagree"
    assert rec["top_tied_for_best"] == {"probe_accuracy": True, "logme": False, "ncm_loo": False}
    assert "LogME and NCM-LOO put another model first" in rec["summary"]
    assert rec["summary"] in out.notes  # said plainly, also among the notes

    two = signal_agreement(
        rank(_state({"m:a": (_right(150), 0.5, 1.0), "m:b": (_right(50), 0.4, 0.5)}), print).probed
    )
    assert two["level"] == "not measured" and two["mean_tau"] is None


def test_agreement_round_trips_and_renders_escaped():
    state = _state(
        {
            "m:<b>a": (_right(180), 0.9, 3.0),
            "m:b": (_right(140), 0.7, 2.0),
            "m:c": (_right(100), 0.5, 1.0),
        }
    )
    out = rank(state, lambda _m: None)
    res = RecommendResults(
        dataset={"name": "d", "classes": ["x"]},
        config={},
        candidates=out.probed,
        agreement=out.agreement,
        weights=weights_record(),
    )
    back = RecommendResults.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back.agreement == out.agreement
    assert back.weights["tie_order_signal"] == TIE_ORDER_SIGNAL
    from advisor.report.render import render_html, render_markdown

    md, html = render_markdown(back), render_html(back)
    assert "## Signal agreement" in md and "Confidence: the signals agree" in md
    assert "<h2>Signal agreement</h2>" in html and "m:&lt;b&gt;a" in html and "m:<b>a" not in html


def test_old_results_without_agreement_still_render():
    res = RecommendResults(dataset={"name": "d"}, config={}, candidates=[])
    d = res.to_dict()
    del d["agreement"]
    from advisor.report.render import render_markdown

    assert "Signal agreement" not in render_markdown(RecommendResults.from_dict(d))
