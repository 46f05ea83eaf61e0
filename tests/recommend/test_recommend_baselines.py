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
    assert baselines_for("image") == ["baseline:raw-pixels"] and baselines_for("audio") == []
