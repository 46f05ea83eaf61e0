"""Fixtures for the dataset tests: tiny synthetic image/audio datasets written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_synth import write_png, write_wav


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """3 classes (cat: 4, dog: 3, fox: 2) of tiny PNGs."""
    root = tmp_path / "imgs"
    for cls, n in (("cat", 4), ("dog", 3), ("fox", 2)):
        for i in range(n):
            write_png(root / cls / f"{i:03d}.png", color=(i * 20, 50, 100))
    return root


@pytest.fixture
def audio_folder(tmp_path) -> Path:
    """2 classes of short 8 kHz sine wavs."""
    root = tmp_path / "audio"
    for cls, f in (("low", 220.0), ("high", 880.0)):
        for i in range(3):
            write_wav(root / cls / f"{i}.wav", freq=f + 10 * i)
    return root
