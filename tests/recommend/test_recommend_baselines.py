"""No-pretraining floors: deterministic features of the right shape."""

from __future__ import annotations

import numpy as np

from advisor.data import Sample
from advisor.recommend.baselines import HASH_DIM, baseline_features, baselines_for


def test_bag_of_words_is_stable_and_normalised():
    samples = [
        Sample(id=f"row:{i}", label="a", path=None, text=t) for i, t in enumerate(["the cat sat", "", "cat"])
    ]
    x, kept = baseline_features("baseline:bag-of-words", samples)
    x2, _ = baseline_features("baseline:bag-of-words", samples)
    assert x.shape == (3, HASH_DIM) and kept == [0, 1, 2]
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_allclose(np.linalg.norm(x[[0, 2]], axis=1), 1.0, rtol=1e-6)
    assert x[1].sum() == 0 and float(x[0] @ x[2]) > 0  # shared token "cat"


def test_raw_pixels_and_modalities(tmp_path):
    from PIL import Image

    p = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (255, 0, 0)).save(p)
    x, kept = baseline_features("baseline:raw-pixels", [Sample(id="a.png", label="r", path=p, text=None)])
    assert x.shape == (1, 768) and kept == [0]
    assert np.isclose(x[0, 0::3], 1.0).all() and np.isclose(x[0, 1::3], 0.0).all()
    assert baselines_for("image") == ["baseline:raw-pixels"] and baselines_for("audio") == [
        "baseline:mfcc-stats"
    ]


def test_mfcc_floor_separates_tones_and_matches_a_direct_computation(tmp_path):
    import soundfile as sf
    from scipy.fft import dct

    from advisor.data import Sample
    from advisor.recommend.baselines import MFCC_COEFFS, _mel_filterbank, mfcc_stats

    rate = 16000
    t = np.arange(rate // 2) / rate
    samples = []
    for name, f in (("low", 300.0), ("high", 3000.0)):
        p = tmp_path / f"{name}.wav"
        sf.write(p, 0.5 * np.sin(2 * np.pi * f * t), rate)
        samples.append(Sample(id=p.name, label=name, path=p, text=None))
    x, kept = baseline_features("baseline:mfcc-stats", samples)
    assert x.shape == (2, 2 * MFCC_COEFFS) and kept == [0, 1]
    assert np.linalg.norm(x[0] - x[1]) > 1.0  # two pure tones far apart in frequency get different MFCCs
    # the filterbank: one triangle per band, every band sampled by the FFT grid, centres rising with frequency
    fb = _mel_filterbank(40, 400, rate)
    assert fb.shape == (40, 201) and (fb.max(1) > 0.5).all() and fb.max() <= 1.0
    assert (np.diff(fb.argmax(1)) >= 0).all() and fb.argmax(1)[-1] > fb.argmax(1)[0]
    # one frame computed by hand equals the first frame's coefficients (a 400-sample clip has one frame)
    w = 0.5 * np.sin(2 * np.pi * 300.0 * np.arange(400) / rate)
    spec = np.abs(np.fft.rfft(w * np.hanning(400))) ** 2
    ref = dct(np.log(spec @ fb.T + 1e-10), type=2, norm="ortho")[:MFCC_COEFFS]
    np.testing.assert_allclose(mfcc_stats(w)[:MFCC_COEFFS], ref, rtol=1e-5, atol=1e-4)
    assert np.allclose(mfcc_stats(w)[MFCC_COEFFS:], 0.0)  # one frame: no spread over time
