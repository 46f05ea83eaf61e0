"""Smoke test of the ranking-quality benchmark (benchmarks/ranking/run.py --smoke) and its ranking metrics."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "ranking"


def _import(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


def test_rank_metrics_known_values():
    """Weighted tau, Kendall tau and regret on hand-checked cases (higher score = predicted better)."""
    m = _import("rb_metrics")
    truth = [0.9, 0.8, 0.5, 0.3]
    assert m.weighted_tau([4, 3, 2, 1], truth) == pytest.approx(1.0)
    assert m.weighted_tau([1, 2, 3, 4], truth) == pytest.approx(-1.0)
    assert m.kendall_tau([4, 3, 2, 1], truth) == pytest.approx(1.0)
    # swapping the top pair costs more than swapping the bottom pair (hyperbolic weights)
    top_swap = m.weighted_tau([3, 4, 2, 1], truth)
    bottom_swap = m.weighted_tau([4, 3, 1, 2], truth)
    assert -1 < top_swap < bottom_swap < 1
    assert m.kendall_tau([3, 4, 2, 1], truth) == pytest.approx(m.kendall_tau([4, 3, 1, 2], truth))
    assert m.top1_regret([4, 3, 2, 1], truth) == pytest.approx(0.0)
    assert m.top1_regret([1, 2, 3, 4], truth) == pytest.approx(0.6)
    assert m.top1_regret([4, 4, 1, 1], truth) == pytest.approx(0.05)  # expected over the tied top pair
    # not applicable (None) sorts below every applicable model
    assert m.top1_regret([None, 1.0, 0.5, None], truth) == pytest.approx(0.1)
    assert m.random_pick_regret(truth) == pytest.approx(0.9 - np.mean(truth))


def test_combine_zscore_weights():
    """The z-score combination ignores unweighted signals and renormalises over the applicable ones."""
    m = _import("rb_metrics")
    sig = {"a": [1.0, 2.0, 3.0], "b": [3.0, 2.0, 1.0], "c": [None, 0.0, 1.0]}
    only_a = m.combine(sig, {"a": 1.0})
    assert np.argmax(only_a) == 2
    both = m.combine(sig, {"a": 1.0, "b": 1.0})
    assert np.allclose(both, 0.0)
    with_c = m.combine(sig, {"c": 1.0})
    assert np.isnan(with_c[0]) and with_c[2] > with_c[1]


def test_ranking_smoke_run(assets, tmp_path):
    """The whole pipeline on a tiny real target: ground truth, advisor signals, ranking metrics, report."""
    for pkg in ("wordllama", "sklearn", "scipy"):
        if importlib.util.find_spec(pkg) is None:
            pytest.skip(f"{pkg} is not installed (packaged model or dependency of the smoke zoo)")
    if not (assets / "data" / "banking77" / "train.csv").exists():
        pytest.skip("banking77 is absent from the shared assets")
    import torch

    run = _import("run")
    threads = torch.get_num_threads()
    try:
        res = run.main(
            [
                "--smoke",
                "--out",
                str(tmp_path / "out"),
                "--cache",
                str(tmp_path / "cache"),
                "--threads",
                "1",
                "--boot",
                "30",
            ]
        )
    finally:
        torch.set_num_threads(threads)
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["schema"] == "advisor.ranking-benchmark" and on_disk["smoke"] is True
    md = (tmp_path / "out" / "RESULTS.md").read_text()
    assert "weighted Kendall" in md and "advisor: probe stage" in md and "Shortlist recall" in md
    # the benchmark's "final order" is the product's: tie groups, then advisor.recommend.ranking.TIE_ORDER_SIGNAL
    from advisor.recommend.ranking import TIE_ORDER_SIGNAL

    final = res["methods"][run.FINAL_ORDER_METHOD]
    assert final["kind"] == "tiered" and final["predictor"]["signal"] == TIE_ORDER_SIGNAL

    by_name = {t["name"]: t for t in res["targets"]}
    assert set(by_name) == {"banking77_smoke", "digits_smoke"}, "both smoke targets (text, image) ran"
    target = by_name["banking77_smoke"]
    ok = {m["key"]: m for m in target["models"] if m["status"] == "ok"}
    assert {"pkg:wordllama-l2-supercat-256", "random:pkg:wordllama-l2-supercat-256", "floor:tfidf"} <= set(ok)
    gt = target["folds"][0]["gt"]
    for g in gt.values():
        assert 0.0 <= g["accuracy"] <= 1.0
        assert g["accuracy_ci"][0] <= g["accuracy"] <= g["accuracy_ci"][1]
    # the ground truth itself is sane: pretrained embeddings beat the same architecture with random weights
    assert (
        gt["pkg:wordllama-l2-supercat-256"]["accuracy"]
        > gt["random:pkg:wordllama-l2-supercat-256"]["accuracy"]
    )

    best = max(g["accuracy"] for g in gt.values())
    scored = res["scored"][target["name"]]
    assert scored, "no subsample size was scored"
    n_applicable = 0
    for per_size in scored.values():
        for name, r in per_size.items():
            assert -1.0 <= r["tau_w"] <= 1.0, name
            assert -1.0 <= r["tau"] <= 1.0, name
            assert 0.0 <= r["regret"] <= best, name
            if r["tau_w_ci"] is not None:
                assert r["tau_w_ci"][0] <= r["tau_w_ci"][1]
                assert r["regret_ci"][0] >= 0.0
            n_applicable += bool(r["applicable"])
        assert per_size["advisor: probe stage (subsample probe)"]["applicable"]
        assert per_size["advisor: final order (tie groups, then NCM-LOO)"]["applicable"]
        assert per_size["advisor: scores stage (current WEIGHTS)"]["applicable"]
        assert per_size["score: logme"]["applicable"]
        assert not per_size["prior: ImageNet top-1"]["applicable"]  # no ImageNet prior for a text zoo
    assert n_applicable >= 5
    assert res["summary"]["all"]

    # regression guard: the advisor's mean tau_w over both smoke targets stays within its recorded CI
    base = json.loads((BENCH / "smoke_baseline.json").read_text())
    for name, rec in base["methods"].items():
        got = res["summary"]["all"][base["size"]][name]["tau_w"]
        assert got >= rec["tau_w_ci"][0] - 1e-9, (
            f"{name}: mean tau_w {got:.3f} < recorded CI low {rec['tau_w_ci'][0]}"
        )
    # shortlist recall of the product's shortlist predictor: fractions, non-decreasing in k, every target
    sr = res["shortlist_recall"]["sizes"][base["size"]]
    assert set(sr["per_target"]) == {"banking77_smoke", "digits_smoke"}
    for r in [*sr["per_target"].values(), sr["mean"]]:
        vals = [r[f"recall@{k}"] for k in res["shortlist_recall"]["ks"]]
        assert all(0.0 <= v <= 1.0 for v in vals) and vals == sorted(vals)
    # the rule study ran leave-one-target-out over the two smoke targets
    fams = res["rules"]["sizes"][base["size"]]["families"]
    for fam in ("single", "z-mean", "tiered", "learned"):
        per = fams[fam]["loto"]["per_target"]
        assert set(per) == {"banking77_smoke", "digits_smoke"}, fam
