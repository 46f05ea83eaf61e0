"""'Statistically tied with #1' comes from an exact McNemar test on shared predictions, Holm-corrected."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.probe import wilson_ci
from advisor.recommend.ranking import PairedCandidate, holm, mcnemar_exact, paired_tie_groups, tie_groups


def _pair(n: int, both: int, a_only: int, b_only: int, n_classes: int = 4, seed: int = 0):
    """True labels and two prediction vectors with the given joint correctness counts."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n)
    wrong = (y + 1) % n_classes
    ca = np.zeros(n, bool)
    cb = np.zeros(n, bool)
    ca[:both] = cb[:both] = True
    ca[both : both + a_only] = True
    cb[both + a_only : both + a_only + b_only] = True
    perm = rng.permutation(n)
    ca, cb = ca[perm], cb[perm]
    return y, np.where(ca, y, wrong), np.where(cb, y, wrong)


def _cand(mid: str, y, pred, ids=None) -> PairedCandidate:
    correct = int((np.asarray(pred) == y).sum())
    ids = ids if ids is not None else [f"s{i}" for i in range(len(y))]
    return PairedCandidate(mid, correct / len(y), wilson_ci(correct, len(y)), ids, list(y), list(pred))


def test_issue_example_81_vs_76_is_not_tied():
    # n = 400: A 81.0 %, B 76.0 %, 300 both right, 24 only A, 4 only B -> exact McNemar p = 0.00018
    y, pa, pb = _pair(400, 300, 24, 4)
    a, b = _cand("a", y, pa), _cand("b", y, pb)
    assert a.accuracy == pytest.approx(0.81) and b.accuracy == pytest.approx(0.76)
    # the old rule (overlapping marginal 95 % intervals) calls them tied
    assert tie_groups([("a", a.accuracy, a.ci), ("b", b.accuracy, b.ci)]) == {"a": 1, "b": 1}
    ties = paired_tie_groups([b, a])
    assert ties["a"].group == 1 and ties["a"].method == "leader"
    assert ties["b"].group == 2 and ties["b"].method == "mcnemar-holm"
    assert ties["b"].p_value == pytest.approx(0.00018, abs=1e-5)
    assert ties["b"].discordant == (24, 4) and ties["b"].n_shared == 400
    assert ties["b"].to_dict()["p_holm"] == pytest.approx(0.00018, abs=1e-5)  # one comparison: Holm = raw


def test_genuinely_tied_pair_is_tied():
    # 81.0 % vs 80.5 %: 30 vs 28 discordant pairs -> p = 0.9
    y, pa, pb = _pair(400, 294, 30, 28)
    ties = paired_tie_groups([_cand("a", y, pa), _cand("b", y, pb)])
    assert ties["b"].group == ties["a"].group == 1
    assert ties["b"].p_value == pytest.approx(0.8957, abs=1e-3)


def test_holm_over_three_comparisons_with_the_leader():
    assert holm([0.01, 0.04, 0.02]) == pytest.approx([0.03, 0.04, 0.04])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    # leader + 3 challengers; raw p of "c" is below 0.05 but its Holm-adjusted p is not -> tied
    n = 400
    y = np.random.default_rng(1).integers(0, 4, size=n)
    wrong = (y + 1) % 4
    lead = y.copy()
    cands = [_cand("lead", y, lead)]
    # (A-only, B-only): challenger i is wrong on a_only samples the leader gets right, right on none it misses
    for mid, a_only in (("b", 20), ("c", 6), ("d", 1)):
        pred = lead.copy()
        idx = np.random.default_rng(len(mid) + a_only).choice(n, size=a_only, replace=False)
        pred[idx] = wrong[idx]
        cands.append(_cand(mid, y, pred))
    ties = paired_tie_groups(cands)
    raw = {
        m: mcnemar_exact(lead == y, np.asarray(c.pred) == y)[0] for m, c in zip("lbcd", cands, strict=True)
    }
    assert raw["c"] < 0.05  # 6 vs 0 discordant: p = 2 * 0.5**6 = 0.031
    assert ties["c"].p_value == pytest.approx(raw["c"])
    assert ties["c"].p_holm == pytest.approx(min(1.0, 2 * raw["c"]))  # second smallest of 3: factor 2
    assert ties["b"].p_holm == pytest.approx(3 * raw["b"])  # smallest: factor 3
    assert ties["b"].group != 1 and ties["c"].group == 1 and ties["d"].group == 1
    without_holm = raw["c"] < 0.05 and ties["c"].p_holm >= 0.05
    assert without_holm  # Holm is what makes "c" tied


def test_predictions_aligned_by_sample_id_and_fallback():
    y, pa, pb = _pair(400, 300, 24, 4)
    ids = [f"s{i}" for i in range(400)]
    perm = np.random.default_rng(3).permutation(400)[:390]  # other order, 10 samples missing
    b = _cand("b", y[perm], pb[perm], ids=[ids[i] for i in perm])
    ties = paired_tie_groups([_cand("a", y, pa, ids=ids), b])
    assert ties["b"].method == "mcnemar-holm" and ties["b"].n_shared == 390
    ref = mcnemar_exact((pa == y)[perm], (pb == y)[perm])[0]
    assert ties["b"].p_value == pytest.approx(ref)
    # no predictions: the interval-overlap rule, said so
    nop = PairedCandidate("b", b.accuracy, b.ci)
    ties = paired_tie_groups([_cand("a", y, pa, ids=ids), nop])
    assert ties["b"].method == "ci-overlap" and ties["b"].p_value is None and ties["b"].group == 1


def test_mcnemar_no_discordant_pairs():
    c = np.array([True, False, True])
    assert mcnemar_exact(c, c) == (1.0, 0, 0)


def test_unscored_rows_are_left_out_of_the_paired_test():
    y, pa, pb = _pair(400, 300, 24, 4)
    pa, pb = pa.copy(), pb.copy()
    pa[:100] = pb[:100] = -1  # e.g. the train part of a given split: no prediction
    ties = paired_tie_groups([_cand("a", y, pa), _cand("b", y, pb)])
    assert ties["b"].n_shared == 300
    assert ties["b"].p_value == pytest.approx(mcnemar_exact((pa == y)[100:], (pb == y)[100:])[0])
