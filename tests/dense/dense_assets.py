"""Paths of the optional real assets for the dense tests (a module with a unique name, importable from any test:
``conftest`` is not, since several test folders have one)."""

from __future__ import annotations

from pathlib import Path

import pytest


def asset_or_skip(root: Path, relative: str) -> Path:
    """``root / relative``, skipping the test when that asset is missing."""
    path = root / relative
    if not path.exists():
        pytest.skip(f"asset not found: {path}")
    return path
