"""Light training augmentation for fine-tuning: a mild random resized crop + flip (images), gain and shift (audio)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def augment_image(img: Any, rng: np.random.Generator) -> Any:
    """Mild random resized crop (70-100 % of the area, aspect 3/4-4/3, back to the original size) and a
    horizontal flip with probability 1/2, on a PIL image, before the model's own preprocessing."""
    from PIL import Image

    w, h = img.size
    area = w * h
    for _ in range(10):
        scale = rng.uniform(0.7, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(area * scale * ratio)), round(math.sqrt(area * scale / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            img = img.resize((w, h), resample=Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
            break
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img


def augment_audio(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light audio augmentation: random gain (0.8-1.2) and a shift of up to 10 % of the clip (zero-filled)."""
    wave = np.asarray(wave, dtype=np.float32) * np.float32(rng.uniform(0.8, 1.2))
    shift = int(rng.integers(-len(wave) // 10, len(wave) // 10 + 1)) if len(wave) >= 10 else 0
    if shift:
        out = np.zeros_like(wave)
        if shift > 0:
            out[shift:] = wave[:-shift]
        else:
            out[:shift] = wave[-shift:]
        wave = out
    return np.clip(wave, -1.0, 1.0)


# ---------------------------------------------------------------------------------------------- the model
