"""Fixtures for the dense-task tests (detection, segmentation): the optional real assets in ../shared/assets.

`shared_assets` (fixture) is the folder ``<repo>/../shared/assets`` (or ``$ADVISOR_ASSETS``); a test that asks for
it is skipped when the folder is absent. `shared_assets_path()` is the same path without skipping (None when
absent), for helpers that build paths at collection time.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_assets_path() -> Path | None:
    """``<repo>/../shared/assets`` (``$ADVISOR_ASSETS`` overrides), or None when it is not there."""
    root = Path(os.environ.get("ADVISOR_ASSETS", REPO_ROOT.parent / "shared" / "assets")).resolve()
    return root if root.is_dir() else None


@pytest.fixture(scope="session")
def shared_assets() -> Path:
    """The real assets folder; the test is skipped when it is absent."""
    root = shared_assets_path()
    if root is None:
        pytest.skip("shared assets not found at <repo>/../shared/assets")
    return root


from dense_assets import asset_or_skip  # noqa: E402  (re-exported for older imports)

__all__ = ["asset_or_skip", "shared_assets", "shared_assets_path"]
