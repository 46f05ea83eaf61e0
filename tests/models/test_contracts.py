"""Contract tests over every registered model source and every packaged ``pkg:`` model (timm ``test_models.py``).

Each source is built tiny and random (nothing is downloaded) and must give the one `LoadedModel` contract: a
JSON-able preprocessing signature that is the same on every load, features ``(N, feature_dim)`` float32 and finite
for its example batch and for raw items of its modality, the same features on every random-init load. Every packaged
model has a loader and a catalog entry that agree on modality and feature dim; one whose pip package is missing
is skipped.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advisor.io import stable_hash
from advisor.models import SOURCES, LoadedModel, ModelId, list_sources, load_model
from advisor.models.packaged import PACKAGES, list_packaged

torch.set_num_threads(1)


def _timm(tmp_path: Path) -> str:
    return "timm:test_vit"


def _torchvision(tmp_path: Path) -> str:
    return "torchvision:mobilenet_v3_small.IMAGENET1K_V1"


def _hf(tmp_path: Path) -> str:
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(
        image_size=32, patch_size=8, hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=30,
    )  # fmt: skip
    ViTModel(cfg).save_pretrained(tmp_path / "vit")
    return f"hf:{tmp_path / 'vit'}"


def _pkg(tmp_path: Path) -> str:
    return "pkg:efficientnet_lite0"  # random init needs only timm, not the weights package


def _local(tmp_path: Path) -> str:
    pytest.importorskip("onnx")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 5, 3, stride=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.conv(x))

    path = tmp_path / "net.onnx"
    torch.onnx.export(
        Net().eval(), (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, input_names=["x"],
        output_names=["f"], dynamic_axes={"x": {0: "b"}},
    )  # fmt: skip
    return f"local:{path}"


# One tiny build per registered source: a source registered without a case here fails `test_every_source_has_a_case`.
SOURCE_CASES: dict[str, Callable[[Path], str]] = {
    "timm": _timm,
    "torchvision": _torchvision,
    "hf": _hf,
    "pkg": _pkg,
    "local": _local,
}


def _raw_items(m: LoadedModel, n: int) -> list:
    rng = np.random.default_rng(0)
    if m.modality == "image":
        return [Image.fromarray(rng.integers(0, 255, (30 + i, 40, 3), dtype=np.uint8)) for i in range(n)]
    if m.modality == "text":
        return ["a man is playing a guitar", "hello world", "the stock market fell sharply today"][:n]
    sr = m.sample_rate or 16000
    return [(0.1 * rng.standard_normal(sr // 2 + 800 * i)).astype(np.float32) for i in range(n)]


def _check_contract(m: LoadedModel, again: LoadedModel, *, random_init: bool) -> None:
    assert m.modality in ("image", "text", "audio") and m.feature_dim > 0
    sig = m.preprocess_signature()
    assert json.loads(json.dumps(sig, sort_keys=True)) == sig  # JSON-able: it is part of feature-cache keys
    assert again.preprocess_signature() == sig and stable_hash(again.preprocess_signature()) == stable_hash(
        sig
    )
    with torch.inference_mode():
        for batch in (m.example_batch(2), m.preprocess(_raw_items(m, 3))):
            out = m.forward(batch)
            n = int(batch[0].shape[0])
            assert out.features.shape == (n, m.feature_dim) and out.features.dtype == torch.float32
            assert torch.isfinite(out.features).all()
            if out.logits is not None:
                assert out.logits.shape[0] == n and out.logits.dtype == torch.float32
                assert m.num_source_classes == out.logits.shape[-1]
        if random_init:  # seeded: the same id gives the same random weights, so cached features stay valid
            x = m.example_batch(2)
            torch.testing.assert_close(m.forward(x).features, again.forward(x).features)


def test_every_source_has_a_case():
    assert sorted(SOURCE_CASES) == list_sources()
    assert all(callable(SOURCES[s]) for s in list_sources())


@pytest.mark.parametrize("source", sorted(SOURCE_CASES))
def test_source_contract(source, tmp_path):
    model_id = SOURCE_CASES[source](tmp_path)
    random_init = source != "local"  # a local graph carries its own weights
    m = load_model(model_id, pretrained=not random_init)
    again = load_model(ModelId.parse(model_id), pretrained=not random_init)
    assert m.model_id == model_id == str(ModelId.parse(model_id))
    assert m.pretrained is (not random_init)
    _check_contract(m, again, random_init=random_init)


def _catalog_pkg_entries() -> dict:
    from advisor.catalog.store import load_catalog

    return {e.id: e for e in load_catalog() if e.source == "pkg"}


def test_every_probeable_pkg_catalog_entry_has_a_loader():
    entries = _catalog_pkg_entries()
    probeable = {mid for mid, e in entries.items() if e.probeable}
    assert probeable == set(list_packaged())
    for name, spec in PACKAGES.items():
        assert callable(spec.loader) and spec.pip and spec.name == name
        assert spec.modality == entries[f"pkg:{name}"].modality


def _installed(dist: str) -> bool:
    from advisor.models.packaged import dist_version

    return dist_version(dist) is not None or importlib.util.find_spec(dist.replace("-", "_")) is not None


@pytest.mark.parametrize("model_id", list_packaged())
def test_packaged_model_contract(model_id):
    spec = PACKAGES[ModelId.parse(model_id).name]
    if not _installed(spec.pip):
        pytest.skip(f"{spec.pip} is not installed")
    # An ONNX graph has no random-init variant; its (small, shipped) weights load without a network.
    random_init = spec.name != "paraphrase-MiniLM-L3-v2"
    m = load_model(model_id, pretrained=not random_init)
    again = load_model(model_id, pretrained=not random_init)
    declared = _catalog_pkg_entries()[model_id].feature_dim
    assert m.modality == spec.modality and m.feature_dim == declared
    _check_contract(m, again, random_init=random_init)
