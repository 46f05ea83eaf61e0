"""Library calls behind `advisor catalog ...` (the CLI is a thin wrapper over these)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from advisor.catalog.licenses import POLICIES
from advisor.catalog.schema import MODALITIES, SOURCES, TASKS, CatalogEntry
from advisor.catalog.store import METRIC_KEYS, Filters, load_catalog, sort_entries
from advisor.errors import UsageError

# the names `advisor recommend --task` uses, for the catalog's task names
TASK_ALIASES = {"detection": "object-detection", "segmentation": "semantic-segmentation"}


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
    descending: bool | None = None,
    min_metric: tuple[str, float] | None = None,
    max_metric: tuple[str, float] | None = None,
) -> list[CatalogEntry]:
    """Catalog entries matching the filters, sorted (unknown values last; ``descending=None``: best first, e.g.
    the highest top-1 or the lowest WER first).

    Raises:
        UsageError: an unknown modality, task, source, license policy or sort key.
    """
    _check_choice(modality, MODALITIES, "--modality")
    task = TASK_ALIASES.get(task, task) if task is not None else None
    _check_choice(task, TASKS, "--task")
    _check_choice(source, SOURCES, "--source")
    _check_choice(license, POLICIES, "--license")
    for opt, bound in (("--min", min_metric), ("--max", max_metric)):
        if bound is not None:
            _check_choice(bound[0], METRIC_KEYS, opt)
    filters = Filters(
        modality=modality,
        task=task,
        source=source,
        family=family,
        max_params=max_params,
        max_gmacs=max_gmacs,
        license=license,
        probeable=probeable,
        min_metric=min_metric,
        max_metric=max_metric,
    )
    return sort_entries(load_catalog().filter(filters), sort, descending, modality)


def rebuild_catalog(
    sources: Path | str | None = None,
    out: Path | None = None,
    *,
    count_params: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Regenerate the catalog JSONL and the published-benchmark records from the source tables in `sources`.

    Args:
        sources: folder holding the upstream tables (e.g. ../shared/data), searched recursively by file name.
        out: where to write the catalog (default: catalog/catalog.jsonl of the source checkout); the published
            benchmark records go beside it as published_bench.jsonl.
        count_params: count parameters by instantiating architectures (minutes) instead of leaving them unknown.
        progress: called with (done, total) while timm architectures are counted.

    Raises:
        UsageError: `sources` missing, not a folder, or lacking a required table.
    """
    from advisor.catalog.build import (
        CATALOG_DIR,
        CURATED_FILE,
        PUBLISHED_BENCH_FILE,
        build_catalog,
        locate_sources,
        published_bench_records,
        write_catalog,
        write_published_bench,
    )
    from advisor.errors import CatalogError

    tables = locate_sources(sources)
    if out is None and not CURATED_FILE.is_file():
        raise CatalogError(
            f"catalog/curated.json not found at {CURATED_FILE}",
            hint="`advisor catalog build` runs from a source checkout (git clone), or pass --out",
        )
    entries = build_catalog(tables, CURATED_FILE, count_params=count_params, progress=progress)
    path = Path(out) if out else CATALOG_DIR / "catalog.jsonl"
    write_catalog(entries, path)
    bench = published_bench_records(tables)
    bench_path = path.parent / PUBLISHED_BENCH_FILE
    write_published_bench(bench, bench_path)
    return {
        "path": str(path),
        "entries": len(entries),
        "by_source": dict(Counter(e.source for e in entries)),
        "published_bench": str(bench_path),
        "published_bench_rows": sum(1 for r in bench if r["kind"] == "row"),
        "sources": str(sources),
    }


def entry_community(model_id: str) -> Any:
    """The community record (`advisor.catalog.community.CommunityRecord`) of one catalog entry, or None when unknown.

    Raises:
        CatalogEntryNotFound: the id is not in the catalog.
        CatalogError: the community file exists but is invalid.
    """
    from advisor.catalog.community import community_of

    return community_of(load_catalog().get(model_id))


def fetch_community_signal(
    ids: list[str] | None = None,
    *,
    sources: tuple[str, ...] = ("hf", "timm"),
    out: Path | str | None = None,
    offline: bool | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Record Hub download/like counts and last modification for catalog entries (`advisor catalog community`).

    Args:
        ids: catalog ids (default: every entry from `sources` whose weights are in a Hub repo).
        sources: the catalog sources to take entries from when `ids` is not given (hf, timm).
        out: the community file (default: catalog/community.json of the source checkout).
        offline: see `advisor.catalog.community.fetch_community`; offline fails fast.
        **options: refresh, limit, api, timeout, delay, checkpoint_every, progress (`fetch_community`).

    Raises:
        CatalogError: offline, no --out outside a source checkout, or an invalid existing file.
        CatalogEntryNotFound: an id that is not in the catalog.
        UsageError: an id whose weights are not in a Hub repo, or an unknown source.
    """
    from advisor.catalog.build import CATALOG_DIR, CURATED_FILE
    from advisor.catalog.community import (
        COMMUNITY_FILE,
        community_repos,
        fetch_community,
        hub_repo_of,
        require_online,
    )
    from advisor.errors import CatalogError

    require_online(offline)  # before anything else: offline fails in seconds
    for s in sources:
        _check_choice(s, ("hf", "timm"), "--source")
    if out is None and not CURATED_FILE.is_file():
        raise CatalogError(
            f"catalog/{COMMUNITY_FILE} has no source checkout to go into",
            hint="pass --out PATH, then point ADVISOR_CATALOG_COMMUNITY at it",
        )
    cat = load_catalog()
    if ids:
        repos = []
        for model_id in ids:
            e = cat.get(model_id)
            repo = hub_repo_of(e)
            if repo is None:
                raise UsageError(
                    f"{e.id}: its weights are not in a Hugging Face Hub repo ({e.source})",
                    hint="pass hf: ids or timm ids whose weights are on the Hub",
                )
            repos.append(repo)
    else:
        repos = community_repos(cat, sources)
    path = Path(out) if out is not None else CATALOG_DIR / COMMUNITY_FILE
    return fetch_community(repos, path, offline=offline, **options)
