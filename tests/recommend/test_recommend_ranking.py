"""Ranking combination, Pareto front, tie groups, and strategy rules."""

from __future__ import annotations

import pytest

from advisor.recommend.ranking import WEIGHTS, combine, pareto_front, spearman, tie_groups, zscores
from advisor.recommend.strategy import THRESHOLDS, advise_strategy


def test_combine_orients_and_weights():
    signals = {
        "logme": {"a": 3.0, "b": 2.0, "c": 1.0},
        "knn_loo": {"a": 0.9, "b": 0.8, "c": 0.5},
        "nce_loss": {"a": 0.1, "b": 0.2, "c": 0.3},  # lower is better
        "prior_imagenet_top1": {"a": None, "b": 80.0, "c": None},  # one known value: dropped
    }
    w = {"logme": 1.0, "knn_loo": 1.0, "nce_loss": 0.5, "prior_imagenet_top1": 0.5}
    pred = combine(signals, {"nce_loss": False}, weights=w)
    assert [m for m, _ in sorted(pred.items(), key=lambda kv: kv[1].rank)] == ["a", "b", "c"]
    assert "prior_imagenet_top1" not in pred["b"].signals
    assert pred["a"].signals["nce_loss"] > 0  # oriented
    assert pred["a"].uncertainty >= 0
    # rank method gives the same order here
    pr = combine(signals, {"nce_loss": False}, method="rank", weights=w)
    assert pr["a"].rank == 1 and pr["c"].rank == 3


def test_combine_weighting_changes_winner():
    signals = {"logme": {"a": 1.0, "b": 0.0}, "prior_log_params": {"a": 0.0, "b": 1.0}}
    assert combine(signals, weights={"logme": 1.0, "prior_log_params": 0.25})["a"].rank == 1
    assert combine(signals, weights={"logme": 0.1, "prior_log_params": 1.0})["b"].rank == 1


def test_default_weights_follow_the_ranking_benchmark():
    # benchmarks/ranking: kNN and NCM accuracy ranked best on held-out targets; the rest are reported, weight 0.
    assert WEIGHTS == {"knn_loo": 1.0, "ncm_loo": 1.0}
    signals = {
        "knn_loo": {"a": 0.9, "b": 0.7},
        "ncm_loo": {"a": 0.8, "b": 0.7},
        "logme": {"a": -5.0, "b": 5.0},
    }
    pred = combine(signals)
    assert pred["a"].rank == 1 and pred["b"].rank == 2  # logme's opposite vote carries no weight
    assert (
        combine({"logme": {"a": 1.0, "b": 0.0}})["a"].score is None
    )  # only zero-weight signals: no prediction


def test_zscores_constant_and_missing():
    assert zscores([1.0, 1.0, None]) == [0.0, 0.0, None]


def test_pareto_front_honours_the_latency_spread():
    # 0.06 ms faster with a 0.2 ms IQR is no trade-off: the less accurate point is dominated
    pts = {"acc": (3.80, 0.80), "near": (3.74, 0.645), "slow": (6.7, 0.81)}
    assert pareto_front(pts) == {"acc", "near", "slow"}  # point estimates alone
    assert pareto_front(pts, {"acc": 0.2, "near": 0.2, "slow": 0.2}) == {"acc", "slow"}
    # and a more accurate point inside the spread of a faster one stays on the front
    assert pareto_front({"a": (5.0, 0.9), "b": (4.9, 0.8)}, {"a": 0.4, "b": 0.4}) == {"a"}
    assert pareto_front({"a": (5.0, 0.9), "b": (4.9, 0.9)}, {"a": 0.4, "b": 0.4}) == {"a", "b"}


def test_pareto_and_ties():
    pts = {"fast": (1.0, 0.80), "slow_best": (10.0, 0.90), "dominated": (12.0, 0.85), "nolat": (None, 0.95)}
    assert pareto_front(pts) == {"fast", "slow_best"}
    g = tie_groups([("a", 0.90, (0.88, 0.92)), ("b", 0.89, (0.87, 0.91)), ("c", 0.80, (0.78, 0.82))])
    assert g == {"a": 1, "b": 1, "c": 2}
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)


def test_strategy_rules():
    few = advise_strategy(samples_per_class=10, n_classes=5, domain_gap=0.9, probe_accuracy=0.5, model_id="m")
    assert few["strategy"] == "linear-probe" and "few_per_class" in few["rule"]
    full = advise_strategy(
        samples_per_class=1000, n_classes=5, domain_gap=0.9, probe_accuracy=0.7, model_id="m", n_blocks=12
    )
    assert full["strategy"] == "full-finetune"
    part = advise_strategy(
        samples_per_class=200, n_classes=5, domain_gap=0.5, probe_accuracy=0.8, model_id="m"
    )
    assert (
        part["strategy"] == "partial-finetune"
        and part["unfreeze_blocks"] == 2
        and part["unfreeze"] == "last-2"
    )
    good = advise_strategy(
        samples_per_class=200, n_classes=5, domain_gap=0.2, probe_accuracy=0.97, model_id="m"
    )
    assert good["strategy"] == "linear-probe"
    assert good["thresholds"] == THRESHOLDS and good["evidence"]["median_samples_per_class"] == 200
