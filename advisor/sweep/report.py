"""The combined report of a sweep: per-dataset rankings, a cross-dataset table and a Pareto plot per hardware.

Rows are long-format (one per dataset x candidate), the same in ``sweep.json`` (``rows``), ``sweep.csv``,
``sweep.md`` and ``sweep.html``; every figure is the one its dataset's run reported (probe accuracy with its
Wilson interval for classification; zero-shot mAP/mIoU, else the proxy, for dense tasks), nothing recomputed or
selected. Every user-supplied string (dataset names, paths, model ids) is escaped for its format.
"""

from __future__ import annotations

import csv
import io
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from advisor.sweep.run import SweepResults

FILES = {"json": "sweep.json", "csv": "sweep.csv", "md": "sweep.md", "html": "sweep.html"}
COLUMNS = (
    "dataset", "task", "model_id", "rank", "status", "metric", "value", "ci_low", "ci_high",
    "latency_ms", "memory_mb", "pareto", "hardware", "error",
)  # fmt: skip


def combined_rows(res: SweepResults) -> list[dict[str, Any]]:
    """One row per dataset x candidate of every finished cell, in cell order, each cell in its own rank order."""
    rows: list[dict[str, Any]] = []
    for cell in res.cells:
        r = res.results.get(cell.name)
        if r is None:
            continue
        part = _dense_rows(cell.name, r) if hasattr(r, "verdict") else _classification_rows(cell.name, r)
        rows += sorted(part, key=lambda x: (x["rank"] is None, x["rank"] or 0, x["model_id"]))
    return rows


def _classification_rows(name: str, r: Any) -> list[dict[str, Any]]:
    hw = (r.hardware or {}).get("key")
    out = []
    for c in r.candidates:
        probe = c.probe or {}
        ci = probe.get("accuracy_ci") or [None, None]
        out.append(
            {
                "dataset": name,
                "task": "classification",
                "model_id": c.model_id,
                "rank": c.rank,
                "status": c.status,
                "metric": "probe accuracy",
                "value": probe.get("accuracy"),
                "ci_low": ci[0],
                "ci_high": ci[1],
                "latency_ms": c.latency_ms,
                "memory_mb": c.memory_mb,
                "pareto": bool(c.pareto),
                "hardware": hw,
                "error": c.error,
            }  # fmt: skip
        )
    return out


def _dense_rows(name: str, r: Any) -> list[dict[str, Any]]:
    hw = (r.hardware or {}).get("key")
    out = []
    for c in r.candidates:
        zs = c.zero_shot_value
        metric = f"zero-shot {_zs_name(r.task)}" if zs is not None else (c.proxy or {}).get("name")
        ci = ((c.proxy or {}).get("ci") if zs is None else None) or [None, None]
        out.append(
            {
                "dataset": name,
                "task": r.task,
                "model_id": c.model_id,
                "rank": c.rank,
                "status": c.role,
                "metric": metric,
                "value": zs if zs is not None else c.proxy_value,
                "ci_low": ci[0],
                "ci_high": ci[1],
                "latency_ms": c.latency_ms,
                "memory_mb": None,
                "pareto": False,
                "hardware": hw,
                "error": c.error,
            }  # fmt: skip
        )
    return out


def _zs_name(task: str) -> str:
    return {"segmentation": "mIoU", "instance-segmentation": "mask mAP"}.get(task, "mAP")


def cross_table(rows: list[dict[str, Any]], datasets: list[str]) -> tuple[list[str], list[list[str]]]:
    """Model x dataset: ``#rank value%`` per cell, and the mean rank over the datasets where it was ranked."""
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by.setdefault(row["model_id"], {})[row["dataset"]] = row
    body = []
    for model, cells in by.items():
        ranks = [c["rank"] for c in cells.values() if c["rank"] is not None]
        mean = sum(ranks) / len(ranks) if ranks else None
        line = [model] + [_cross_cell(cells.get(d)) for d in datasets]
        body.append(
            (mean is None, mean or 0.0, model, line + [f"{mean:.2f} ({len(ranks)})" if ranks else "—"])
        )
    body.sort(key=lambda t: (t[0], t[1], t[2]))
    return ["model", *datasets, "mean rank (datasets)"], [b[3] for b in body]


def _cross_cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    if row["value"] is None:
        return "—" if not row["error"] else "failed"
    rank = f"#{row['rank']} " if row["rank"] is not None else ""
    return f"{rank}{100 * row['value']:.1f}%"


def _ranking(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["rank", "model", "metric", "value %", "95% CI", "latency ms", "memory MB", "pareto"]
    body = []
    for r in rows:
        ci = f"{100 * r['ci_low']:.1f}–{100 * r['ci_high']:.1f}" if r["ci_low"] is not None else "—"
        body.append(
            [
                str(r["rank"] or "—"),
                r["model_id"],
                r["metric"] or (r["error"] or "—"),
                _num(r["value"], 100, ".1f"),
                ci,
                _num(r["latency_ms"], 1, ".1f"),
                _num(r["memory_mb"], 1, ".0f"),
                "yes" if r["pareto"] else "",
            ]  # fmt: skip
        )
    return header, body


def _num(v: Any, scale: float, spec: str) -> str:
    return "—" if v is None else format(float(v) * scale, spec)


def render_csv(rows: list[dict[str, Any]]) -> str:
    """The long-format rows as CSV (formula-looking cells neutralised)."""
    from advisor.report.render import csv_cell

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([csv_cell(r[k]) if r[k] is not None else "" for k in COLUMNS])
    return buf.getvalue()


def render_md(res: SweepResults, rows: list[dict[str, Any]]) -> str:
    """Markdown: cells, the cross-dataset table, then each dataset's ranking."""
    from advisor.report.render import _md_table, md_text

    names = [c.name for c in res.cells if c.name in res.results]
    parts = ["# Sweep", "", _md_table(*_cells_table(res)), ""]
    if names:
        parts += ["## Across datasets", "", _md_table(*cross_table(rows, names)), ""]
    for n in names:
        parts += [f"## {md_text(n)}", "", _md_table(*_ranking([r for r in rows if r["dataset"] == n])), ""]
    return "\n".join(parts)


def _cells_table(res: SweepResults) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "path", "task", "status", "seconds", "run folder / error"]
    body = [
        [c.name, c.path, c.task or "—", c.status, f"{c.seconds:.1f}", c.error or c.run_dir or "—"]
        for c in res.cells
    ]
    return header, body


def render_html(res: SweepResults, rows: list[dict[str, Any]]) -> str:
    """One self-contained HTML file: the tables and, per dataset and hardware, a latency vs metric plot."""
    from advisor.report.render import _CSS, _html_table

    names = [c.name for c in res.cells if c.name in res.results]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>advisor sweep</title>",
        f"<style>{_CSS}</style></head><body><h1>Sweep</h1>",
        _html_table(*_cells_table(res)),
    ]
    if names:
        parts += ["<h2>Across datasets</h2>", _html_table(*cross_table(rows, names))]
    for n in names:
        mine = [r for r in rows if r["dataset"] == n]
        parts += [f"<h2>{escape(n)}</h2>", _html_table(*_ranking(mine), win_first=True), *_plots(n, mine)]
    parts.append("</body></html>")
    return "\n".join(parts)


def _plots(name: str, rows: list[dict[str, Any]]) -> list[str]:
    """A latency vs metric scatter per hardware the dataset's candidates were measured on (Pareto front drawn)."""
    from advisor.report.svg import Point, scatter

    out = []
    for hw in sorted({r["hardware"] or "" for r in rows}):
        pts = [r for r in rows if (r["hardware"] or "") == hw and r["value"] is not None and r["latency_ms"]]
        if len(pts) < 2:
            continue
        points = [
            Point(float(r["latency_ms"]), 100 * float(r["value"]), r["model_id"], highlight=bool(r["pareto"]))
            for r in pts
        ]
        front = sorted((p.x, p.y) for p in points if p.highlight)
        out.append(
            scatter(
                points,
                title=f"{name}: latency vs {pts[0]['metric']} (hardware {hw or '?'})",
                x_label="latency ms (p50)",
                y_label=f"{pts[0]['metric']} %",
                log_x=True,
                front=front or None,
            )
        )
    return out


def write_sweep_dir(res: SweepResults, out: str | Path) -> dict[str, Path]:
    """Write sweep.json, sweep.csv, sweep.md and sweep.html into `out` (each atomically); returns the paths."""
    from advisor.io import atomic_write_text
    from advisor.sweep.run import write_manifest

    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    rows = combined_rows(res)
    paths = {"json": write_manifest(res, o)}
    paths["csv"] = atomic_write_text(o / FILES["csv"], render_csv(rows))
    paths["md"] = atomic_write_text(o / FILES["md"], render_md(res, rows))
    paths["html"] = atomic_write_text(o / FILES["html"], render_html(res, rows))
    return paths
