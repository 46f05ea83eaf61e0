"""`run_sweep`: every dataset of a sweep through `advisor recommend`, one after the other, into one sweep folder.

Each dataset is an ordinary recommend run (its folder ``<out>/runs/<name>``, any executor: the candidates of a
dataset run where the executor puts them), and the sweep keeps one manifest, ``sweep.json``, rewritten atomically
with the combined report after every dataset, so the results so far are readable while a sweep runs.

Resuming: a dataset whose run finished with the same settings (its cell key: the run's options) and the same data
(the dataset fingerprint, checked again) is read back, not run; any other is run, and inside it every candidate
whose features, scores, probe or benchmark the caches hold is not recomputed either. So a rerun after a killed
sweep computes only what is missing, and nothing is served for inputs that changed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.errors import AdvisorError, ResultsError
from advisor.io import atomic_write_json, stable_hash
from advisor.sweep.config import SweepConfig, SweepDataset

log = logging.getLogger(__name__)

SWEEP_SCHEMA = "advisor.sweep/1"
MANIFEST = "sweep.json"
_NOT_KEYED = (
    "out",
    "progress",
    "dry_run",
)  # where a run writes and whether it shows progress: not its result
_KEYED_WHEN_SET = {"roi_probe": True}  # RunConfig fields newer than sweep manifests, and their defaults


@dataclass
class SweepCell:
    """One dataset of a sweep: how it went and where its run folder is."""

    name: str
    path: str
    key: str
    status: str  # "done" (run now), "reused" (read back), "failed"
    task: str | None = None
    fingerprint: str | None = None
    run_dir: str | None = None
    seconds: float = 0.0
    error: str | None = None
    headline: str | None = None  # the run's verdict in one line (a floor that wins, too few samples, ...)


@dataclass
class SweepResults:
    """A sweep's cells and, for each finished cell, its recommend results (`RecommendResults`/`DenseResults`)."""

    config: dict[str, Any]
    cells: list[SweepCell]
    results: dict[str, Any] = field(default_factory=dict)  # cell name -> results object
    out: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The manifest (``sweep.json``): schema, config, cells, and the combined rows of every finished cell."""
        from advisor.sweep.report import combined_rows

        return {
            "schema": SWEEP_SCHEMA,
            "config": self.config,
            "cells": [dataclasses.asdict(c) for c in self.cells],
            "rows": combined_rows(self),
            "out": self.out,
        }


def cell_key(run_cfg: Any) -> str:
    """The settings of a dataset's run, hashed (where it writes and whether it shows progress left out)."""
    d = {k: v for k, v in dataclasses.asdict(run_cfg).items() if k not in _NOT_KEYED}
    for k, default in _KEYED_WHEN_SET.items():  # fields added later: cells at their default keep their key
        if d.get(k) == default:
            d.pop(k, None)
    return stable_hash(d, 16)


def run_sweep(
    cfg: SweepConfig,
    *,
    executor: Any = None,
    resume: bool = True,
    progress_fn: Callable[[str], None] | None = None,
) -> SweepResults:
    """Run (or read back) every dataset of `cfg`, writing the manifest and combined report after each.

    Args:
        cfg: the sweep (`advisor.sweep.config.sweep_config` or `load_sweep_file`).
        executor: an `advisor.recommend.work.Executor` (or its name) for every dataset's candidates.
        resume: read back datasets that finished with the same settings and data (False: run every one again).
        progress_fn: one-line progress messages (the sweep's and each run's).

    Returns:
        `SweepResults`; a dataset that fails is a failed cell (with its one-line error), never the end of the sweep.
    """
    from advisor.sweep.report import write_sweep_dir

    out = Path(cfg.out)
    say = progress_fn or (lambda _m: None)
    before = _previous_cells(out) if resume else {}
    res = SweepResults(config=_config_dict(cfg), cells=[], out=str(out))
    for i, ds in enumerate(cfg.datasets, 1):
        say(f"sweep [{i}/{len(cfg.datasets)}] {ds.name}: {ds.path}")
        cell, results = _one_cell(cfg, ds, out, before.get(ds.name), executor, progress_fn)
        res.cells.append(cell)
        if results is not None:
            res.results[cell.name] = results
        say(
            f"sweep [{i}/{len(cfg.datasets)}] {ds.name}: {cell.status}"
            + (f" ({cell.error})" if cell.error else "")
        )
        write_sweep_dir(res, out)  # partial results readable while the sweep goes on
    return res


def _one_cell(
    cfg: SweepConfig,
    ds: SweepDataset,
    out: Path,
    prev: dict[str, Any] | None,
    executor: Any,
    progress_fn: Callable[[str], None] | None,
) -> tuple[SweepCell, Any]:
    from advisor.api import recommend, run_config

    run_dir = out / "runs" / ds.name
    t0 = time.perf_counter()
    key = ""
    try:
        opts = {**cfg.options, **ds.options, "models": ds.models or cfg.models or None, "out": str(run_dir)}
        run_cfg = run_config(ds.path, **opts)
        key = cell_key(run_cfg)
        reused = _reuse(prev, key, run_cfg, run_dir)
        if reused is not None:
            results, fp = reused
            return _cell(ds, key, "reused", results, fp, t0), results
        results = recommend(config=run_cfg, executor=executor, progress_fn=progress_fn)
    except AdvisorError as e:
        return SweepCell(ds.name, ds.path, key, "failed", error=e.message), None
    if getattr(results, "run_dir", None) is None:  # a dry run or an unwritten run: nothing to resume from
        return SweepCell(ds.name, ds.path, key, "failed", error="the run wrote no results"), None
    return _cell(ds, key, "done", results, _fingerprint_of(results), t0), results


def _cell(ds: SweepDataset, key: str, status: str, results: Any, fp: str | None, t0: float) -> SweepCell:
    task = getattr(results, "task", None) or "classification"
    verdict = getattr(results, "verdict", None) or getattr(results, "advice", None) or {}
    return SweepCell(
        ds.name, ds.path, key, status, task, fp, results.run_dir, round(time.perf_counter() - t0, 3),
        headline=verdict.get("headline"),
    )  # fmt: skip


def _reuse(prev: dict[str, Any] | None, key: str, run_cfg: Any, run_dir: Path) -> tuple[Any, str] | None:
    """The finished results of this cell when its settings and data are unchanged, else None (run it)."""
    if not prev or prev.get("status") not in ("done", "reused") or prev.get("key") != key:
        return None
    from advisor.api import report

    try:
        results = report(run_dir)
    except ResultsError as e:
        log.info("sweep: %s is run again (%s)", run_dir, e.message)
        return None
    stored = _fingerprint_of(results)
    now = _current_fingerprint(run_cfg)
    if stored is None or stored != now:
        log.info("sweep: %s changed since its run: run again", run_cfg.data)
        return None
    return results, stored


def _fingerprint_of(results: Any) -> str | None:
    fp = (getattr(results, "dataset", None) or {}).get("fingerprint")
    return str(fp) if fp else None


def _current_fingerprint(run_cfg: Any) -> str | None:
    """The dataset's fingerprint as the task's reader computes it now (None: it cannot be read)."""
    from advisor.tasks import detect_task, get_task

    try:
        task = get_task(run_cfg.task or detect_task(run_cfg.data))
        ds = task.load_dataset(run_cfg)
    except AdvisorError:
        return None
    fp = ds.fingerprint
    return str(fp() if callable(fp) else fp)


def _previous_cells(out: Path) -> dict[str, dict[str, Any]]:
    """The cells of an earlier manifest in `out` (none when there is none or it does not parse)."""
    import json

    f = out / MANIFEST
    try:
        d = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(d, dict) or d.get("schema") != SWEEP_SCHEMA:
        return {}
    return {c["name"]: c for c in d.get("cells", []) if isinstance(c, dict) and "name" in c}


def _config_dict(cfg: SweepConfig) -> dict[str, Any]:
    return {
        "datasets": [
            {"name": d.name, "path": d.path, "models": list(d.models), "options": dict(d.options)}
            for d in cfg.datasets
        ],
        "models": list(cfg.models),
        "options": dict(cfg.options),
        "out": cfg.out,
    }


def write_manifest(res: SweepResults, out: Path) -> Path:
    """``sweep.json`` (atomic)."""
    return atomic_write_json(out / MANIFEST, res.to_dict())
