"""No-pretraining floors: features any pretrained model should beat (raw pixels, hashed bag of words, MFCC statistics).

They are probed like the candidates and shown beside the ranking (never ranked themselves): a pretrained model
that does not beat its floor is not worth its cost on this data.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

RAW_PIXELS_SIDE = 16  # 16x16 RGB = 768 features
HASH_DIM = 4096
# MFCC floor: 16 kHz, 25 ms windows every 10 ms, 40 mel bands (HTK mel scale), 20 coefficients; mean and std over time.
MFCC_RATE, MFCC_NFFT, MFCC_HOP, MFCC_MELS, MFCC_COEFFS = 16000, 400, 160, 40, 20

BASELINES: dict[str, tuple[str, str]] = {
    # id: (modality, description)
    "baseline:raw-pixels": ("image", f"raw RGB pixels downsampled to {RAW_PIXELS_SIDE}x{RAW_PIXELS_SIDE}"),
    "baseline:bag-of-words": (
        "text",
        f"hashed unigram+bigram counts ({HASH_DIM} dims, log-scaled, L2-normalised)",
    ),
    "baseline:mfcc-stats": (
        "audio",
        f"mean and std over time of {MFCC_COEFFS} MFCCs ({MFCC_MELS} mel bands, 25 ms / 10 ms at 16 kHz)",
    ),
}


def baselines_for(modality: str) -> list[str]:
    """Baseline ids available for a modality."""
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
        small = img.convert("RGB").resize((RAW_PIXELS_SIDE, RAW_PIXELS_SIDE), Image.Resampling.BILINEAR)
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


def _mel_filterbank(n_mels: int, n_fft: int, rate: int) -> np.ndarray:
    """Triangular filters on the HTK mel scale, (n_mels, n_fft // 2 + 1), each peaking at 1."""

    def mel(f: Any) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m: Any) -> np.ndarray:
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(0.0), mel(rate / 2), n_mels + 2))
    freqs = np.linspace(0.0, rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - freqs[None]) / np.maximum(hi - mid, 1e-9)
    return np.clip(np.minimum(up, down), 0.0, None)


def mfcc_stats(wave: np.ndarray, rate: int = MFCC_RATE) -> np.ndarray:
    """Mean and standard deviation over time of the MFCCs of a mono waveform: (2 * MFCC_COEFFS,) float32."""
    from scipy.fft import dct

    wave = np.asarray(wave, dtype=np.float64)
    if len(wave) < MFCC_NFFT:
        wave = np.pad(wave, (0, MFCC_NFFT - len(wave)))
    n_frames = 1 + (len(wave) - MFCC_NFFT) // MFCC_HOP
    idx = np.arange(MFCC_NFFT)[None, :] + MFCC_HOP * np.arange(n_frames)[:, None]
    frames = wave[idx] * np.hanning(MFCC_NFFT)[None, :]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel_energy = power @ _mel_filterbank(MFCC_MELS, MFCC_NFFT, rate).T
    coeffs = dct(np.log(mel_energy + 1e-10), type=2, axis=1, norm="ortho")[:, :MFCC_COEFFS]
    return np.concatenate([coeffs.mean(0), coeffs.std(0)]).astype(np.float32)


def _mfcc(samples: Sequence, on_skip: Callable[[str], None]) -> tuple[np.ndarray, list[int]]:
    from advisor.data import SkipItem, load_audio

    rows, kept = [], []
    for i, s in enumerate(samples):
        try:
            wave = load_audio(s, MFCC_RATE)
        except SkipItem as e:
            on_skip(f"{s.id}: {e}")
            continue
        rows.append(mfcc_stats(wave))
        kept.append(i)
    return (np.stack(rows) if rows else np.zeros((0, 2 * MFCC_COEFFS), np.float32)), kept


def baseline_features(
    baseline_id: str, samples: Sequence, on_skip: Callable[[str], None] | None = None
) -> tuple[np.ndarray, list[int]]:
    """Features of a floor for `samples`; returns (features (n, D) float32, indices of the samples kept)."""
    if baseline_id == "baseline:raw-pixels":
        return _raw_pixels(samples, on_skip or (lambda _m: None))
    if baseline_id == "baseline:bag-of-words":
        return _bag_of_words(samples)
    if baseline_id == "baseline:mfcc-stats":
        return _mfcc(samples, on_skip or (lambda _m: None))
    raise KeyError(baseline_id)
