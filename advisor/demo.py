"""The bundled demo dataset: a 400-image Fashion-MNIST sample (MIT) shipped inside the package."""

from __future__ import annotations

from pathlib import Path

DEMO_NAME = "fashion-mnist"


def demo_dataset_path() -> Path:
    """Path of the bundled demo image folder (10 class subfolders of 28×28 PNGs; see its LICENSE.md)."""
    return Path(__file__).resolve().parent / "demo_data" / DEMO_NAME
