"""Where the shipped catalog data lives: package data `advisor.catalog_data` (the top-level catalog/ folder).

Every read of catalog data goes through here (or `advisor.catalog.store`), never through a path of its own.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DATA_PACKAGE = "advisor.catalog_data"
CATALOG_FILE = "catalog.jsonl"  # the catalog records
CURATED_FILE = "curated.json"  # hand-curated entries (Hugging Face architecture specs among them)
PUBLISHED_BENCH_FILE = "published_bench.jsonl"  # timm's published inference benchmark rows
COMMUNITY_FILE = "community.json"  # Hub downloads and likes per repo (`catalog community`); absent: unknown


def data_file(name: str) -> Path | None:
    """A file of the shipped catalog data (installed package data, else the source checkout's catalog/ folder),
    or None when it is not there."""
    try:
        p = resources.files(DATA_PACKAGE) / name
        if p.is_file():
            return Path(str(p))
    except ModuleNotFoundError:
        pass
    p = Path(__file__).resolve().parents[2] / "catalog" / name
    return p if p.is_file() else None


def read_data_text(name: str) -> str | None:
    """The text (UTF-8) of a shipped catalog data file, or None when it is not there."""
    p = data_file(name)
    return p.read_text(encoding="utf-8") if p is not None else None
