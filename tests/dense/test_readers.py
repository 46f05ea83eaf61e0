"""Tests of the dense readers (filled in below)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.assets
def test_shared_assets_fixture_points_at_the_assets(shared_assets: Path) -> None:
    assert (shared_assets / "detection").is_dir()
