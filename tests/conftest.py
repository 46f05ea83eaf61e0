"""Shared test fixtures: no network, caches in tmp, few threads, and the optional ../shared/assets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch the network: hub clients refuse to download.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("ADVISOR_ASSETS", REPO_ROOT.parent / "shared" / "assets"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache root, so nothing leaks between tests or into ~/.cache."""
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path_factory.mktemp("advisor-cache")))


@pytest.fixture(scope="session")
def assets() -> Path:
    """The real models and data in ../shared/assets; the test is skipped when they are absent."""
    if not ASSETS.is_dir():
        pytest.skip(f"shared assets not found at {ASSETS}")
    return ASSETS


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
