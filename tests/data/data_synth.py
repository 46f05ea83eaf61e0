"""Writers of tiny synthetic media files for the dataset tests (PNG via Pillow, WAV via soundfile)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_png(path: Path, size=(8, 6), color=(200, 10, 10), mode="RGB") -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def write_wav(
    path: Path, seconds=0.1, sr=8000, freq=440.0, channels=1, amplitude=0.5, subtype="PCM_16"
) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    wave = amplitude * np.sin(2 * np.pi * freq * t)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    sf.write(str(path), data, sr, subtype=subtype)
    return path


def class_colour_images(
    root: Path, classes=("ant", "bee", "cat"), per_class: int = 6, side: int = 24
) -> Path:
    """`per_class` noisy `side` px PNGs per class whose brightness depends on the class (seeded): a folder dataset
    that a tiny random model can still separate a little."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = (rng.random((side, side, 3)) * 50 + ci * 80).astype(np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")
    return root
