"""The ranking benchmark's rule study (benchmarks/ranking/rb_rules.py) and its offline-zoo builders, on known cases."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "ranking"


def _import(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


def test_tiered_scores_order_by_group_then_predictor():
    r = _import("rb_rules")
    # models 0 and 2 are tied with the best (group 1); 1 is in group 2 though the predictor likes it most
    s = r.tiered_scores([1, 2, 1, 3], [0.1, 9.0, 0.5, None])
    assert np.argsort(s)[::-1].tolist() == [2, 0, 1, 3]


def test_loto_never_chooses_on_the_held_out_target():
    r = _import("rb_rules")
    # held out t1: chosen on t2, t3 where "b" is better; held out t2 or t3: "a" wins on the other two thanks to t1
    pts = {
        "a": {"t1": {"tau_w": 1.0, "regret": 0.0}, "t2": {"tau_w": 0.1, "regret": 0.1}, "t3": {"tau_w": 0.2, "regret": 0.1}},
        "b": {"t1": {"tau_w": 0.0, "regret": 0.2}, "t2": {"tau_w": 0.8, "regret": 0.0}, "t3": {"tau_w": 0.7, "regret": 0.0}},
    }  # fmt: skip
    chosen = r.loto(pts, ["t1", "t2", "t3"], ["a", "b"])
    assert chosen == {"t1": "b", "t2": "a", "t3": "a"}
    # ties on tau_w go to the lower regret
    pts["c"] = {t: {"tau_w": v["tau_w"], "regret": v["regret"] - 0.05} for t, v in pts["b"].items()}
    assert r.choose(pts, ["t2", "t3"], ["a", "b", "c"]) == "c"


def test_fit_nnls_recovers_the_informative_signal():
    r = _import("rb_rules")
    rng = np.random.default_rng(0)
    keys = [f"m{i}" for i in range(8)]
    items = []
    for _ in range(20):
        truth = rng.uniform(0.5, 0.9, len(keys))
        good = truth + rng.normal(0, 0.01, len(keys))
        noise = rng.normal(0, 1, len(keys))
        table = {"good": dict(zip(keys, good, strict=True)), "noise": dict(zip(keys, noise, strict=True))}
        items.append((table, {"good": True, "noise": True}, truth, keys))
    w = r.fit_nnls(items, ["good", "noise"])
    assert w["good"] > 0.9 and w.get("noise", 0.0) < 0.1
    assert r.fit_nnls([], ["good"]) == {}


def test_recall_at_counts_the_true_best_in_the_top_k():
    r = _import("rb_rules")
    rec = {
        "keys": ["a", "b", "c"],
        "folds": [
            {
                "gt": {"a": {"accuracy": 0.9}, "b": {"accuracy": 0.8}, "c": {"accuracy": 0.1}},
                "subsamples": [{"per_class": 5, "s": [1, 3, 2]}, {"per_class": 5, "s": [3, 1, 2]}],
            }
        ],
    }
    got = r.recall_at(rec, 5, lambda rec, sub: sub["s"], ks=(1, 2, 3))
    assert got == {"recall@1": 0.5, "recall@2": 0.5, "recall@3": 1.0}


def test_cifar_resnet_matches_the_paper_sizes():
    pytest.importorskip("torch")
    x = _import("rb_zoo_extra")
    import torch

    for depth, params in ((20, 0.27e6), (56, 0.85e6)):
        net = x._cifar_resnet(depth).eval()
        n = sum(p.numel() for p in net.parameters())
        assert abs(n - params) / params < 0.03, (depth, n)
        f, logits = net(torch.zeros(2, 3, 32, 32))
        assert f.shape == (2, 64) and logits.shape == (2, 10)


def test_cifar_checkpoint_exports_and_loads_through_local(assets, tmp_path):
    """The real checkpoint, read with weights_only=True, exported to ONNX and loaded by the product's local: route."""
    pytest.importorskip("onnx")
    if not (assets / "image" / "cifar_resnet").exists():
        pytest.skip("CIFAR ResNet checkpoints are absent from the shared assets")
    x = _import("rb_zoo_extra")
    from advisor.models import load_model

    lm = load_model(x.cifar_model_id(assets, 20, tmp_path))
    assert lm.feature_dim == 64 and lm.num_source_classes == 10
    from PIL import Image

    out = lm.forward(lm.preprocess([Image.new("RGB", (40, 40))]))
    assert out.features.shape == (1, 64) and out.logits.shape == (1, 10)
