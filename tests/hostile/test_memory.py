"""Memory amplification (issue 12 item 7): huge images are reduced as they decode, before a batch holds them; long
clips are decoded only up to the cap, and the cut is counted. Memory is asserted structurally (what sizes reach a
batch, how many frames are read), never by RSS or wall-clock."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

import advisor.data.media as media
import advisor.features.engine as E
from advisor.data import load_audio, load_dataset, load_image
from advisor.data.media import decode_min_side, reduce_factor
from advisor.features import extract_features
from advisor.models import load_model
from advisor.models.base import ExampleSpec, LoadedModel

torch.set_num_threads(1)
MODEL = "timm:test_vit"  # input 160: decode_min_side = 1024 (monkeypatched below to keep files small)


def _smooth(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like RGB array: low-frequency content plus a little noise (not blocky, not pure noise)."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 255, (h // 20 + 1, w // 20 + 1, 3), dtype=np.uint8))
    arr = np.asarray(base.resize((w, h), Image.BICUBIC)).astype(np.int16)
    return np.clip(arr + rng.integers(-12, 12, arr.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def small_min_side(monkeypatch):
    """Drop the 1024 px floor, keeping the real 4 x input-side rule, so 'huge' test images stay ~1.5 Mpx."""
    monkeypatch.setattr(media, "REDUCE_MIN_SIDE", 64)
    return decode_min_side(load_model(MODEL, pretrained=False).input_size)  # 4 x 160 = 640


def test_decode_min_side_rule():
    assert decode_min_side(224) == 1024  # max(4 x 224, 1024)
    assert decode_min_side(384) == 1536
    assert decode_min_side((3, 256, 320)) == 1280  # (c, h, w): the largest side
    assert decode_min_side(None) == 1024  # unknown input size: as for 224
    assert reduce_factor((9000, 9000), 1024) == 8  # 9000x9000 -> 1125x1125 (243 MB -> 3.8 MB decoded)
    assert reduce_factor((2047, 4000), 1024) == 1  # under twice the floor: decoded exactly as before


def test_ordinary_images_decode_exactly_as_without_reduction(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(_smooth(1500, 2000, 0)).save(path)  # 3 Mpx: an ordinary photo, under 2 x 1024 short side
    full = load_image(path)
    reduced = load_image(path, min_side=decode_min_side(224))
    assert reduced.size == full.size == (2000, 1500)
    np.testing.assert_array_equal(np.asarray(reduced), np.asarray(full))


@pytest.mark.parametrize(
    "mode",
    ["RGB", "RGBA", "LA", "L", "P", "I;16", "CMYK"],
)
def test_reduced_decode_matches_full_decode_then_resize(tmp_path, mode):
    """Every mode: the reduced decode equals the full decode box-resized to that size (alpha composited on white
    after premultiplied averaging, palettes and 16-bit expanded before averaging), within rounding."""
    arr = _smooth(480, 640, 1)
    im = Image.fromarray(arr)
    if mode in ("RGBA", "LA"):
        alpha = Image.fromarray(_smooth(480, 640, 2)[..., 0])
        im = im.convert(mode[:-1])
        im.putalpha(alpha)
    elif mode == "I;16":
        im = Image.fromarray(arr[..., 0].astype(np.uint16) * 257)  # saved as a 16-bit greyscale PNG
    else:
        im = im.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    im.save(path)
    full = load_image(path)
    small = load_image(path, min_side=100)  # 480 // 100 = 4: a 4x box reduction
    assert small.mode == "RGB" and small.size == (160, 120)
    want = np.asarray(full.resize(small.size, Image.BOX), dtype=np.int16)
    diff = np.abs(np.asarray(small, dtype=np.int16) - want)
    assert diff.max() <= 3 and diff.mean() < 0.75, (diff.max(), diff.mean())


def test_large_jpeg_uses_dct_scaling_then_reduction(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(_smooth(1200, 1600, 3)).save(path, quality=95)
    small = load_image(path, min_side=100)
    assert (
        small.mode == "RGB" and 100 <= min(small.size) < 200
    )  # draft 1/8 -> 150x200, then no further reduce
    full = load_image(path).resize(small.size, Image.BOX)
    assert np.abs(np.asarray(small, dtype=np.int16) - np.asarray(full, dtype=np.int16)).mean() < 3


def test_batches_never_hold_full_size_decodes(tmp_path, small_min_side, monkeypatch):
    """Structural bound: every image that reaches the collate function (a batch) is already reduced."""
    root = tmp_path / "big"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(_smooth(1300, 1280 + 150 * i, i)).save(root / c / f"{i}.png")
    ds = load_dataset(root)
    seen: list[tuple[int, int]] = []
    real_call = E._Collate.__call__

    def spy(self, rows):
        seen.extend(x.size for _, x, err in rows if err is None)
        return real_call(self, rows)

    monkeypatch.setattr(E._Collate, "__call__", spy)
    fs = extract_features(ds, MODEL, pretrained=False, device="cpu", batch_size=6, progress=False)
    assert fs.features.shape == (6, 64) and len(seen) == 6
    assert all(small_min_side <= min(s) < 2 * small_min_side for s in seen), seen
    assert max(w * h for w, h in seen) < 1300 * 1580 / 3  # vs 1300 x 1580 decoded in full


def test_features_of_reduced_huge_images_match_full_decode(tmp_path, small_min_side):
    """The reduction is below what the model's own resize would notice: features agree with a full decode."""
    root = tmp_path / "big"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(_smooth(1300, 1400, 10 * i + ord(c))).save(root / c / f"{i}.png")
    ds = load_dataset(root)
    fs = extract_features(ds, MODEL, pretrained=False, device="cpu", progress=False)
    m = load_model(MODEL, pretrained=False)
    with torch.inference_mode():
        direct = m.forward(m.preprocess([load_image(s) for s in ds.samples])).features.numpy()
    rel = np.linalg.norm(fs.features - direct, axis=1) / np.linalg.norm(direct, axis=1)
    assert rel.max() < 0.02, rel


# ------------------------------------------------------------------------------------------------------- audio
def _wav(path, seconds: float, sr: int = 8000, channels: int = 1, seed: int = 0):
    import soundfile as sf

    rng = np.random.default_rng(seed)
    x = (0.3 * rng.standard_normal((int(seconds * sr), channels))).astype(np.float32)
    sf.write(str(path), x, sr, subtype="PCM_16")
    return x


class _MeanStd(torch.nn.Module):
    def forward(self, x, lengths):
        mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        n = mask.sum(1, keepdim=True).clamp(min=1)
        mean = (x * mask).sum(1, keepdim=True) / n
        return torch.cat(
            [mean, ((x - mean) ** 2 * mask).sum(1, keepdim=True) / n, lengths[:, None].float()], 1
        )


def _audio_model() -> LoadedModel:
    def pre(items):
        n = max(len(w) for w in items)
        x = torch.zeros(len(items), n)
        for i, w in enumerate(items):
            x[i, : len(w)] = torch.from_numpy(np.asarray(w))
        return (x, torch.tensor([len(w) for w in items]))

    return LoadedModel(
        model_id="test:meanstd-audio",
        modality="audio",
        feature_dim=3,
        preprocess_fn=pre,
        signature={"kind": "test-meanstd"},
        example=ExampleSpec(sample_rate=8000),
        module=_MeanStd(),
        sample_rate=8000,
    )


def test_load_audio_reads_only_the_first_max_seconds(tmp_path, monkeypatch):
    import soundfile as sf

    x = _wav(tmp_path / "long.wav", 12.0)
    asked: list[int] = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, *a, **k):
        asked.append(frames)
        return real_read(self, frames, *a, **k)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    wave = load_audio(tmp_path / "long.wav", 8000, max_seconds=2.0)
    assert asked == [16000] and wave.shape == (16000,)  # 2 s read, not 12 s decoded then cut
    np.testing.assert_allclose(wave, np.clip(x[:16000, 0], -1, 1), atol=1 / 32768)
    assert load_audio(tmp_path / "long.wav", 8000).shape == (96000,)  # no cap: the whole clip


def test_long_clips_are_capped_counted_and_keyed(tmp_path, monkeypatch, caplog):
    root = tmp_path / "clips"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        _wav(root / c / "short.wav", 1.0, seed=ord(c))
        _wav(root / c / "long.wav", 9.0, seed=ord(c) + 1)
    ds = load_dataset(root)
    monkeypatch.setenv("ADVISOR_MAX_AUDIO_SECONDS", "3")
    with caplog.at_level(logging.WARNING):
        fs = extract_features(ds, _audio_model(), device="cpu", progress=False)
    assert fs.meta["audio_cut"] == {"max_seconds": 3.0, "clips": 2}
    assert fs.summary()["audio_cut"] == {"max_seconds": 3.0, "clips": 2}
    assert sum("2 clip(s) longer than 3 s" in r.getMessage() for r in caplog.records) == 1
    lengths = dict(zip(fs.ids, fs.features[:, 2].tolist(), strict=True))
    assert lengths == {"a/long.wav": 24000, "a/short.wav": 8000, "b/long.wav": 24000, "b/short.wav": 8000}
    # the cap is part of the cache key: another cap is computed afresh, never served from the first
    monkeypatch.setenv("ADVISOR_MAX_AUDIO_SECONDS", "6")
    fs6 = extract_features(ds, _audio_model(), device="cpu", progress=False)
    assert fs6.meta["cache_hit"] is False and fs6.meta["cache_key"] != fs.meta["cache_key"]
    assert fs6.features[fs6.ids.index("a/long.wav"), 2] == 48000


def test_bad_audio_cap_setting_falls_back_to_default(monkeypatch):
    for bad in ("zero", "-5", "nan", "inf"):
        monkeypatch.setenv("ADVISOR_MAX_AUDIO_SECONDS", bad)
        assert media.max_audio_seconds() == media.DEFAULT_MAX_AUDIO_SECONDS
