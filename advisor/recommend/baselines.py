"""No-pretraining floors: features any pretrained model should beat (raw pixels, hashed bag of words).

They are probed like the candidates and shown beside the ranking (never ranked themselves): a pretrained model
that does not beat its floor is not worth its cost on this data.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence

import numpy as np

RAW_PIXELS_SIDE = 16  # 16x16 RGB = 768 features
HASH_DIM = 4096

BASELINES: dict[str, tuple[str, str]] = {
    # id: (modality, description)
    "baseline:raw-pixels": ("image", f"raw RGB pixels downsampled to {RAW_PIXELS_SIDE}x{RAW_PIXELS_SIDE}"),
    "baseline:bag-of-words": (
        "text",
        f"hashed unigram+bigram counts ({HASH_DIM} dims, log-scaled, L2-normalised)",
    ),
}


def baselines_for(modality: str) -> list[str]:
    """Baseline ids available for a modality (none for audio: MFCC statistics need librosa)."""
    return [k for k, (m, _) in BASELINES.items() if m == modality]


def _raw_pixels(samples: Sequence, on_skip: Callable[[str], None]) -> tuple[np.ndarray, list[int]]:
    from PIL import Image

    from advisor.data import SkipItem, load_image

    rows, kept = [], []
    for i, s in enumerate(samples):
        try:
            img = load_image(s)
        except SkipItem as e:
            on_skip(f"{s.id}: {e}")
            continue
        small = img.convert("RGB").resize((RAW_PIXELS_SIDE, RAW_PIXELS_SIDE), Image.BILINEAR)
        rows.append(np.asarray(small, dtype=np.float32).reshape(-1) / 255.0)
        kept.append(i)
    return (np.stack(rows) if rows else np.zeros((0, 3 * RAW_PIXELS_SIDE**2), np.float32)), kept


_TOKEN = re.compile(r"\w+", re.UNICODE)


def _bag_of_words(samples: Sequence) -> tuple[np.ndarray, list[int]]:
    x = np.zeros((len(samples), HASH_DIM), dtype=np.float32)
    for i, s in enumerate(samples):
        toks = _TOKEN.findall((s.text or "").lower())
        grams = toks + [a + " " + b for a, b in zip(toks, toks[1:], strict=False)]
        for g in grams:
            x[i, zlib.crc32(g.encode()) % HASH_DIM] += 1.0  # crc32: stable across runs, unlike hash()
    x = np.log1p(x)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12), list(range(len(samples)))


def baseline_features(
    baseline_id: str, samples: Sequence, on_skip: Callable[[str], None] | None = None
) -> tuple[np.ndarray, list[int]]:
    """Features of a floor for `samples`; returns (features (n, D) float32, indices of the samples kept)."""
    if baseline_id == "baseline:raw-pixels":
        return _raw_pixels(samples, on_skip or (lambda _m: None))
    if baseline_id == "baseline:bag-of-words":
        return _bag_of_words(samples)
    raise KeyError(baseline_id)
