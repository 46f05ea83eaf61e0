"""Local ONNX files: modality and layout from the input signature, batch-fixed graphs looped, clear errors.

Every graph is built here in ``tmp_path`` (``torch.onnx.export`` of tiny modules, or ``onnx.helper``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advisor.errors import ModelLoadError
from advisor.models import load_model
from advisor.models.local_options import _pool
from advisor.models.local_tflite import check_tflite_input
from advisor.models.onnx_layout import OnnxInput, infer_layout

onnx = pytest.importorskip("onnx")
torch.set_num_threads(1)


class Conv(torch.nn.Module):
    """NCHW image -> (N, 6, H', W')."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 6, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class ConvNHWC(Conv):
    """NHWC image -> NHWC map (N, H', W', 6), as TF exports give."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)


class Wave(torch.nn.Module):
    """(N, samples) waveform -> (N, T, 5) frame features."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv1d(1, 5, 64, stride=32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x.unsqueeze(1))).transpose(1, 2)


class Spectrogram(torch.nn.Module):
    """(N, samples) -> (N, 1, T, 4): a front end, not an embedding (pools to 1 value per clip)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], 1, -1, 4).abs()


def _export(net: torch.nn.Module, example: torch.Tensor, path: Path, *, dynamic: dict | None) -> Path:
    torch.onnx.export(
        net.eval(), (example,), str(path), dynamo=False, input_names=["x"], output_names=["f"],
        dynamic_axes=dynamic,
    )  # fmt: skip
    return path


def _imgs(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)) for _ in range(n)]


def _waves(n: int, length: int = 16000) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [(0.1 * rng.standard_normal(length - 37 * i)).astype(np.float32) for i in range(n)]


# ------------------------------------------------------------------------------------------------ images
def test_fixed_batch1_image_export_runs_a_batch_of_32(tmp_path):
    net = Conv()
    path = _export(net, torch.randn(1, 3, 32, 32), tmp_path / "b1.onnx", dynamic=None)
    m = load_model(f"local:{path}?mean=0.5,0.5,0.5&std=0.5,0.5,0.5")  # input_size comes from the graph
    assert m.modality == "image" and m.feature_dim == 6
    batch = m.preprocess(_imgs(32))
    assert batch[0].shape == (32, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(
            m.forward(batch).features, net(batch[0]).mean((2, 3)), atol=1e-5, rtol=1e-4
        )
    assert m.example_batch(5)[0].shape == (5, 3, 32, 32)


def test_input_size_that_contradicts_a_fixed_graph_is_refused(tmp_path):
    path = _export(Conv(), torch.randn(1, 3, 32, 32), tmp_path / "b1.onnx", dynamic=None)
    with pytest.raises(ModelLoadError) as ei:
        load_model(f"local:{path}?input_size=224")
    assert str(path) in ei.value.message and "32x32" in ei.value.message and "\n" not in str(ei.value)


def test_dynamic_image_graph_keeps_its_cache_signature(tmp_path):
    """The preprocessing signature (a feature-cache key part) of a plain NCHW graph is what it was before."""
    path = _export(Conv(), torch.randn(1, 3, 32, 32), tmp_path / "net.onnx", dynamic={"x": {0: "b"}})
    m = load_model(f"local:{path}?input_size=32")
    assert m.preprocess_signature() == {
        "model_id": f"local:{path}?input_size=32",
        "revision": m.revision,
        "pretrained": True,
        "runtime": "onnx",
        "kind": "local-image",
        "input_size": [3, 32, 32],
        "interpolation": "bilinear",
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "crop_pct": 0.875,
        "crop_mode": "center",
        "output": "f",
        "file": "net.onnx",
    }


def test_nhwc_image_graph_is_fed_channels_last(tmp_path):
    net = ConvNHWC()
    path = _export(net, torch.randn(1, 24, 24, 3), tmp_path / "nhwc.onnx", dynamic={"x": {0: "b"}})
    m = load_model(f"local:{path}")
    assert m.modality == "image" and m.feature_dim == 6
    assert m.preprocess_signature()["layout"] == "NHWC" and m.preprocess_signature()["input_size"] == [
        3,
        24,
        24,
    ]
    batch = m.preprocess(_imgs(3))
    with torch.inference_mode():
        ref = net(batch[0].permute(0, 2, 3, 1)).mean((1, 2))
        torch.testing.assert_close(m.forward(batch).features, ref, atol=1e-5, rtol=1e-4)


def test_a_batch_the_graph_cannot_take_is_one_line_naming_the_file(tmp_path):
    path = _export(Conv(), torch.randn(1, 3, 32, 32), tmp_path / "b1.onnx", dynamic=None)
    m = load_model(f"local:{path}")
    with pytest.raises(ModelLoadError) as ei:
        m.forward((torch.zeros(2, 3, 40, 40),))
    msg = str(ei.value)
    assert str(path) in msg and "ONNXRuntimeError" not in msg and "\n" not in msg


# ------------------------------------------------------------------------------------------------ audio
def test_waveform_graph_is_audio_from_its_signature(tmp_path):
    net = Wave()
    path = _export(net, torch.randn(2, 4000), tmp_path / "wave.onnx", dynamic={"x": {0: "b", 1: "s"}})
    m = load_model(f"local:{path}")  # no modality given: [batch, samples] float is a waveform
    assert m.modality == "audio" and m.feature_dim == 5 and m.sample_rate == 16000
    batch = m.preprocess(_waves(4))
    with torch.inference_mode():
        torch.testing.assert_close(m.forward(batch).features, net(batch[0]).mean(1), atol=1e-5, rtol=1e-4)
    assert m.preprocess_signature()["kind"] == "local-audio"


def test_fixed_batch1_fixed_length_audio_graph(tmp_path):
    net = Wave()
    path = _export(net, torch.randn(1, 8000), tmp_path / "wave1.onnx", dynamic=None)
    m = load_model(f"local:{path}?modality=audio")
    waves = _waves(32)
    batch = m.preprocess(waves)
    assert batch[0].shape == (32, 8000)  # padded or cropped to the graph's 8000 samples
    with torch.inference_mode():
        feats = m.forward(batch).features
        torch.testing.assert_close(feats, net(batch[0]).mean(1), atol=1e-5, rtol=1e-4)
    assert feats.shape == (32, 5) and feats.dtype == torch.float32
    assert np.allclose(batch[0][0].numpy(), waves[0][:8000])
    assert m.preprocess_signature()["samples"] == 8000


def test_int16_waveform_graph_gets_int16_samples(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["pcm"], ["pcm_f"], to=TensorProto.FLOAT),
            helper.make_node("MatMul", ["pcm_f", "w"], ["emb"]),
        ],
        "int16",
        [helper.make_tensor_value_info("pcm", TensorProto.INT16, ["n", 8])],
        [helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["n", 4])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    path = tmp_path / "pcm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    m = load_model(f"local:{path}")
    assert m.modality == "audio" and m.feature_dim == 4
    wave = np.linspace(-0.5, 0.5, 8, dtype=np.float32)
    with torch.inference_mode():
        got = m.forward(m.preprocess([wave])).features.numpy()
    np.testing.assert_allclose(got[0], np.round(wave * 32767) @ w, rtol=1e-5)
    assert m.preprocess_signature()["input_scale"] == 32767.0


def test_modality_that_contradicts_the_graph_is_refused(tmp_path):
    audio = _export(Wave(), torch.randn(2, 4000), tmp_path / "wave.onnx", dynamic={"x": {0: "b", 1: "s"}})
    image = _export(Conv(), torch.randn(1, 3, 32, 32), tmp_path / "img.onnx", dynamic={"x": {0: "b"}})
    for path, asked in ((audio, "image"), (image, "audio")):
        with pytest.raises(ModelLoadError) as ei:
            load_model(f"local:{path}?modality={asked}")
        msg = str(ei.value)
        assert str(path) in msg and f"modality={asked}" in msg and "\n" not in msg


def test_audio_front_end_giving_1d_features_is_refused(tmp_path):
    path = _export(
        Spectrogram(), torch.randn(2, 4000), tmp_path / "mel.onnx", dynamic={"x": {0: "b", 1: "s"}}
    )
    with pytest.raises(ModelLoadError) as ei:
        load_model(f"local:{path}?modality=audio")
    msg = str(ei.value)
    assert str(path) in msg and "1 value per input" in msg and "?output=" in msg and "\n" not in msg


def test_spectrogram_input_graph_is_unsupported_with_its_shape(tmp_path):
    class OnMels(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean((1, 2))  # (N, 76, 32, 1) -> (N, 1)

    path = _export(OnMels(), torch.randn(1, 76, 32, 1), tmp_path / "emb.onnx", dynamic={"x": {0: "b"}})
    for q in ("", "?modality=audio"):
        with pytest.raises(ModelLoadError) as ei:
            load_model(f"local:{path}{q}")
        msg = str(ei.value)
        assert str(path) in msg and "76, 32, 1" in msg and "\n" not in msg and "ONNXRuntimeError" not in msg


def test_output_without_a_batch_axis_is_refused(tmp_path):
    class Total(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum().reshape(1, 1).expand(1, 3)  # always (1, 3), whatever the batch

    path = _export(Total(), torch.randn(2, 100), tmp_path / "total.onnx", dynamic={"x": {0: "b", 1: "s"}})
    with pytest.raises(ModelLoadError) as ei:
        load_model(f"local:{path}")
    assert "does not keep the batch axis" in ei.value.message and str(path) in ei.value.message


@pytest.mark.assets
def test_real_google_speech_embedding_files_give_clear_errors(assets):
    folder = assets / "audio" / "google_speech_embedding"
    if not folder.is_dir():
        pytest.skip("google_speech_embedding not in the shared assets")
    for name, q, needle in (
        ("melspectrogram.onnx", "", "1 value per input"),
        ("melspectrogram.onnx", "?modality=audio", "1 value per input"),
        ("melspectrogram.onnx", "?modality=image", "takes audio"),
        ("embedding_model.onnx", "", "not a 3-channel image"),
        ("embedding_model.onnx", "?modality=audio", "not a 3-channel image"),
    ):
        with pytest.raises(ModelLoadError) as ei:
            load_model(f"local:{folder / name}{q}")
        msg = str(ei.value)
        assert str(folder / name) in msg and needle in msg and "\n" not in msg, msg


# ------------------------------------------------------------------------------------------------ signatures
@pytest.mark.parametrize(
    ("shape", "type_", "want"),
    [
        (("b", 3, 224, 224), "tensor(float)", ("image", "NCHW", None, 224)),
        (("N", "C", "H", "W"), "tensor(float)", ("image", "NCHW", None, None)),
        ((1, 96, 96, 3), "tensor(float)", ("image", "NHWC", 1, 96)),
        (("batch", "samples"), "tensor(float)", ("audio", "waveform", None, None)),
        ((1, 16000), "tensor(int16)", ("audio", "waveform", 1, None)),
        (("b", 1, 16000), "tensor(float)", ("audio", "channel-waveform", None, None)),
        (("b", "t"), "tensor(int64)", ("text", "tokens", None, None)),
    ],
)
def test_layout_from_the_input_signature(shape, type_, want):
    lay = infer_layout(Path("m.onnx"), [OnnxInput("x", shape, type_)])
    assert (lay.modality, lay.layout, lay.batch, lay.side) == want


@pytest.mark.parametrize(
    ("shape", "type_"),
    [(("b", 76, 32, 1), "tensor(float)"), (("b", 1, 28, 28), "tensor(float)"), (("b", 3, 4, 5, 6), "tensor(float)"),
     (("b", 3, 32, 32), "tensor(uint8)"), (("b", 40, 98), "tensor(float)")],
)  # fmt: skip
def test_unsupported_input_signatures_are_named(shape, type_):
    with pytest.raises(ModelLoadError) as ei:
        infer_layout(Path("m.onnx"), [OnnxInput("x", shape, type_)])
    assert "m.onnx" in ei.value.message and "'x'" in ei.value.message


def test_tflite_input_that_is_not_an_image_is_refused():
    check_tflite_input(
        Path("m.tflite"), {"name": "img", "shape": np.array([1, 224, 224, 3]), "dtype": np.uint8}
    )
    with pytest.raises(ModelLoadError) as ei:
        check_tflite_input(
            Path("m.tflite"), {"name": "wav", "shape": np.array([1, 16000]), "dtype": np.float32}
        )
    assert "m.tflite" in ei.value.message and "[1, 16000]" in ei.value.message


def test_tflite_label_file_that_is_missing_is_named(tmp_path):
    from advisor.models.local_tflite import _read_labels

    (tmp_path / "labels.txt").write_text("cat\n\ndog\n")
    assert _read_labels(Path("m.tflite"), tmp_path / "labels.txt") == ["cat", "dog"]
    assert _read_labels(Path("m.tflite"), None) is None
    with pytest.raises(ModelLoadError) as ei:
        _read_labels(Path("m.tflite"), tmp_path / "missing.txt")
    assert "missing.txt" in ei.value.message and "m.tflite" in ei.value.message


def test_channels_last_pooling():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    torch.testing.assert_close(_pool(x), x.mean((2, 3)))
    torch.testing.assert_close(_pool(x, channels_last=True), x.mean((1, 2)))


# ------------------------------------------------------------------------------------------------ sidecar std
@pytest.mark.parametrize("std", [[0, 0, 0], [0.2, -0.1, 0.2], ["NaN", 0.2, 0.2]])
def test_sidecar_with_zero_negative_or_nan_std_is_refused(tmp_path, std):
    path = _export(Conv(), torch.randn(1, 3, 32, 32), tmp_path / "net.onnx", dynamic={"x": {0: "b"}})
    side = tmp_path / "net.onnx.json"
    side.write_text(json.dumps({"std": [float(s) for s in std]}))
    with pytest.raises(ModelLoadError) as ei:
        load_model(f"local:{path}")
    msg = str(ei.value)
    assert str(side) in msg and "std" in msg and "\n" not in msg


def test_zero_std_in_the_id_is_refused_naming_the_file(tmp_path):
    path = _export(Conv(), torch.randn(1, 3, 32, 32), tmp_path / "net.onnx", dynamic={"x": {0: "b"}})
    with pytest.raises(ModelLoadError) as ei:
        load_model(f"local:{path}?std=0,0,0")
    assert str(path) in ei.value.message and "std=" in ei.value.message


# ------------------------------------------------------------------------------------------------ through the CLI
def _audio_folder(root: Path, n: int = 3) -> Path:
    import soundfile as sf

    rng = np.random.default_rng(0)
    for ci, c in enumerate(("yes", "no")):
        (root / c).mkdir(parents=True)
        for i in range(n):
            t = np.arange(8000) / 16000
            wave = 0.3 * np.sin(2 * np.pi * (300 + 200 * ci) * t) + 0.01 * rng.standard_normal(t.size)
            sf.write(root / c / f"{i}.wav", wave.astype(np.float32), 16000)
    return root


def _features_cli(data: Path, model: str):
    from typer.testing import CliRunner

    from advisor.cli.main import app

    args = ["features", "--data", str(data), "--model", model, "--no-progress", "--format", "json"]
    return CliRunner().invoke(app, args, env={"COLUMNS": "500"})


def test_features_cli_runs_a_fixed_batch1_audio_graph(tmp_path):
    pytest.importorskip("soundfile")
    data = _audio_folder(tmp_path / "clips")
    path = _export(Wave(), torch.randn(1, 8000), tmp_path / "wave1.onnx", dynamic=None)
    r = _features_cli(data, f"local:{path}")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["n"] == 6 and out["dim"] == 5, out


def test_features_cli_gives_one_line_for_an_unfeedable_audio_graph(tmp_path):
    pytest.importorskip("soundfile")
    data = _audio_folder(tmp_path / "clips")

    class OnMels(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean((1, 2))

    path = _export(OnMels(), torch.randn(1, 76, 32, 1), tmp_path / "emb.onnx", dynamic={"x": {0: "b"}})
    r = _features_cli(data, f"local:{path}?modality=audio")
    assert r.exit_code != 0 and "Traceback" not in r.output and "ONNXRuntimeError" not in r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert str(path) in lines[0] and "76, 32, 1" in lines[0], r.output
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].strip().startswith("hint:")), r.output


# ------------------------------------------------------------------------------------------------ text
def test_fixed_batch1_fixed_length_text_graph(tmp_path):
    from onnx import TensorProto, helper, numpy_helper
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "a", "b", "guitar"]
    tok_dir = tmp_path / "tok"
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(tok_dir)
    emb = np.random.default_rng(0).standard_normal((len(vocab), 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["E", "input_ids"], ["tokens"])],
        "text",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, 8]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, 8]),
        ],
        [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, [1, 8, 4])],
        initializer=[numpy_helper.from_array(emb, "E")],
    )
    path = tmp_path / "text.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    m = load_model(f"local:{path}?tokenizer={tok_dir}")  # int64 input_ids: text, without modality=
    assert m.modality == "text" and m.feature_dim == 4
    texts = ["hello world", "a b guitar hello", "guitar"]
    ids, mask = m.preprocess(texts)
    assert ids.shape == (3, 8)  # padded to the graph's fixed length
    with torch.inference_mode():
        got = m.forward((ids, mask)).features.numpy()
    want = [(emb[i[k.bool()]]).mean(0) for i, k in zip(ids.numpy(), mask, strict=True)]
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-5, atol=1e-6)
    assert m.preprocess_signature()["fixed_length"] == 8
    assert m.example_batch(2)[0].shape == (2, 8)


def test_text_graph_without_a_tokenizer_says_how_to_give_one(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Gather", ["E", "input_ids"], ["tokens"])],
        "text",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["n", "t"])],
        [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["n", "t", 4])],
        initializer=[numpy_helper.from_array(np.zeros((10, 4), np.float32), "E")],
    )
    path = tmp_path / "text.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelLoadError) as ei:
        load_model(f"local:{path}")
    assert str(path) in ei.value.message and "tokenizer" in (ei.value.hint or "")


def test_a_score_output_is_refused_as_one_value_per_input(tmp_path):
    class Score(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.abs().mean(1)  # (N,): one number per clip

    path = _export(Score(), torch.randn(2, 100), tmp_path / "score.onnx", dynamic={"x": {0: "b", 1: "s"}})
    with pytest.raises(ModelLoadError) as ei:
        load_model(f"local:{path}")
    assert "1 value per input" in ei.value.message and str(path) in ei.value.message
