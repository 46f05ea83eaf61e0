"""Runtimes of the feature forward pass: each checked against eager, auto picks by a trial and remembers it,
fallbacks say why, the ONNX export is keyed by the weights, and extraction records what ran."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import advisor.models.runtimes as R
from advisor.data import load_dataset
from advisor.errors import UsageError
from advisor.features import extract_features
from advisor.models import load_model
from advisor.runtime import check_runtime

torch.set_num_threads(1)
pytest.importorskip("onnxruntime")
MODEL = "timm:test_efficientnet"  # a conv net with a classifier head (features + logits)


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    return load_model(MODEL, pretrained=False, device="cpu")


def _folder(root, per_class=4):
    rng = np.random.default_rng(0)
    for ci, c in enumerate(("ant", "bee")):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray((rng.random((20, 24, 3)) * 60 + ci * 90).astype(np.uint8)).save(
                root / c / f"{i}.png"
            )
    return load_dataset(root)


@pytest.mark.parametrize("name", ["channels-last", "onnxruntime"])
def test_each_runtime_matches_eager_on_features_and_logits(lm, name):
    new, choice = R.with_runtime(lm, name, trial_batch=3)
    assert choice.runtime == name and new.runtime == name and choice.requested == name
    x = lm.example_batch(5)
    with torch.inference_mode():
        ref, got = lm.forward(x), new.forward(x)
    assert got.features.shape == ref.features.shape and got.logits.shape == ref.logits.shape
    assert torch.allclose(got.features, ref.features, atol=1e-4, rtol=1e-3)
    assert torch.allclose(got.logits, ref.logits, atol=1e-4, rtol=1e-3)
    assert new.preprocess_signature()["runtime"] == name  # so its features are cached apart from eager's


def test_auto_times_every_runtime_picks_the_fastest_and_remembers(lm, monkeypatch):
    new, choice = R.with_runtime(lm, "auto", trial_batch=2)
    assert set(choice.trial_ms) == {"eager", "channels-last", "onnxruntime"}
    assert choice.runtime == min(choice.trial_ms, key=lambda n: choice.trial_ms[n])
    assert not choice.remembered and new.runtime == ("torch" if choice.runtime == "eager" else choice.runtime)

    def no_timing(*a, **k):
        raise AssertionError("a remembered choice is not timed again")

    monkeypatch.setattr(R, "_time_ms", no_timing)
    again, second = R.with_runtime(lm, "auto", trial_batch=2)
    assert second.remembered and second.runtime == choice.runtime and second.trial_ms == choice.trial_ms


def test_the_trial_times_a_clear_loser_once_and_a_close_call_twice_keeping_the_best(monkeypatch):
    passes = {"eager": [300.0, 290.0], "channels-last": [140.0, 120.0], "onnxruntime": [100.0, 110.0]}
    calls: list[str] = []

    def scripted(cand, batch):
        calls.append(cand)
        return passes[cand].pop(0)

    monkeypatch.setattr(R, "_time_ms", scripted)
    ms = R._trial({n: n for n in passes}, ())  # type: ignore[arg-type]
    assert calls.count("eager") == 1  # 300 > 1.5 x 100: one pass settles it
    assert calls.count("channels-last") == 2 and calls.count("onnxruntime") == 2
    assert ms == {"eager": 300.0, "channels-last": 120.0, "onnxruntime": 100.0}


def test_a_runtime_that_fails_or_differs_falls_back_to_eager_with_the_reason(lm, monkeypatch):
    def broken(_lm):
        raise RuntimeError("exporter says no")

    monkeypatch.setattr(R, "_onnxruntime", broken)
    same, choice = R.with_runtime(lm, "onnxruntime", trial_batch=2)
    assert same is lm and choice.runtime == "eager" and "exporter says no" in choice.reasons["onnxruntime"]
    monkeypatch.setattr(R, "ATOL", -1.0)  # nothing can be within a negative tolerance
    same, choice = R.with_runtime(lm, "channels-last", trial_batch=2)
    assert same is lm and "differ from eager" in choice.reasons["channels-last"]


def test_the_onnx_file_is_keyed_by_the_weights(lm):
    import copy

    path = R._onnx_path(lm)
    other = copy.deepcopy(lm)
    with torch.no_grad():
        next(other.module.parameters()).add_(1.0)
    assert R._onnx_path(other) != path  # same id and signature, other weights: another export


def test_non_image_models_and_unknown_names(lm):
    text = load_model("timm:test_vit", pretrained=False, device="cpu")
    text.modality = "text"
    same, choice = R.with_runtime(text, "onnxruntime")
    assert same is text and choice.runtime == "eager" and "only image models" in choice.reasons["onnxruntime"]
    with pytest.raises(UsageError, match="unknown runtime 'tensorrt'"):
        check_runtime("tensorrt")


def test_extraction_records_the_runtime_and_caches_it_apart(tmp_path):
    ds = _folder(tmp_path / "imgs")
    kw = dict(pretrained=False, device="cpu", batch_size=4, progress=False)
    eager = extract_features(ds, MODEL, **kw)
    ort = extract_features(ds, MODEL, runtime="onnxruntime", **kw)
    assert eager.meta["runtime"]["runtime"] == "torch" and ort.meta["runtime"]["runtime"] == "onnxruntime"
    assert ort.meta["cache_key"] != eager.meta["cache_key"]
    np.testing.assert_allclose(ort.features, eager.features, atol=1e-4, rtol=1e-3)
    again = extract_features(ds, MODEL, runtime="onnxruntime", **kw)
    assert again.meta["cache_hit"] and again.meta["runtime"]["runtime"] == "onnxruntime"


def test_a_failing_export_writes_nothing_to_stdout(tmp_path, capfd):
    """torch prints the whole TorchScript graph to descriptor 1 when an export fails; under --format json that
    broke the output (found by the kill test once auto became recommend's default)."""
    import timm
    from safetensors.torch import save_file

    f = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("test_vit").state_dict().items()}, str(f))
    vit = load_model(f"local:{f}?arch=timm:test_vit&input_size=32", device="cpu")
    _, choice = R.with_runtime(vit, "onnxruntime")
    out, err = capfd.readouterr()
    assert choice.runtime == "eager" and "onnxruntime" in choice.reasons  # the export did fail
    assert out == ""
    assert "graph at exception" not in err  # nor to the terminal: the reason is in the choice
