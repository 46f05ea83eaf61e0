"""Library calls behind `advisor catalog ...` (the CLI is a thin wrapper over these)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from advisor.catalog.licenses import POLICIES
from advisor.catalog.schema import MODALITIES, SOURCES, TASKS, CatalogEntry
from advisor.catalog.store import Filters, load_catalog, sort_entries
from advisor.errors import UsageError


def _check_choice(value: str | None, choices: tuple[str, ...], option: str) -> None:
    if value is not None and value not in choices:
        import difflib

        close = difflib.get_close_matches(value, choices, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"use one of: {', '.join(choices)}"
        raise UsageError(f"{option} {value!r} is not known", hint=hint)


def list_entries(
    *,
    modality: str | None = None,
    task: str | None = None,
    source: str | None = None,
    family: str | None = None,
    max_params: float | None = None,
    max_gmacs: float | None = None,
    license: str = "any",
    probeable: bool | None = None,
    sort: str = "id",
    descending: bool = False,
) -> list[CatalogEntry]:
    """Catalog entries matching the filters, sorted (unknown values last).

    Raises:
        UsageError: an unknown modality, task, source, license policy or sort key.
    """
    _check_choice(modality, MODALITIES, "--modality")
    _check_choice(task, TASKS, "--task")
    _check_choice(source, SOURCES, "--source")
    _check_choice(license, POLICIES, "--license")
    filters = Filters(
        modality=modality,
        task=task,
        source=source,
        family=family,
        max_params=max_params,
        max_gmacs=max_gmacs,
        license=license,
        probeable=probeable,
    )
    return sort_entries(load_catalog().filter(filters), sort, descending)


def rebuild_catalog(
    out: Path | None = None, *, count_params: bool = True, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Regenerate the catalog JSONL from the vendored sources and curated file; returns a summary.

    Args:
        out: where to write (default: catalog/catalog.jsonl of the source checkout).
        count_params: count parameters by instantiating architectures (minutes) instead of leaving them unknown.
        progress: called with (done, total) while timm architectures are counted.
    """
    from advisor.catalog.build import CURATED_FILE, SOURCES_DIR, build_catalog, write_catalog
    from advisor.errors import CatalogError

    if not SOURCES_DIR.is_dir():
        raise CatalogError(
            f"catalog sources not found at {SOURCES_DIR}",
            hint="`advisor catalog build` runs from a source checkout (git clone), not an installed wheel",
        )
    entries = build_catalog(SOURCES_DIR, CURATED_FILE, count_params=count_params, progress=progress)
    path = out or SOURCES_DIR.parent / "catalog.jsonl"
    write_catalog(entries, Path(path))
    return {"path": str(path), "entries": len(entries), "by_source": dict(Counter(e.source for e in entries))}
