"""`advisor data profile|sample`: inspect a dataset folder or table (classes, sizes, what was skipped and why)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from advisor.cli._output import Output, OutputFormat, safe, stdout_console
from advisor.cli.options import (
    AdvisorCommand,
    FormatOpt,
    IgnoreIndexOpt,
    MaxPerClassOpt,
    MaxSamplesOpt,
    SeedOpt,
    TaskOpt,
    dataset_options,
)

if TYPE_CHECKING:
    from advisor.data.spec import DatasetSpec

app = typer.Typer(
    name="data", help="Inspect datasets: layout, classes, sizes, skipped files.", no_args_is_help=True,
    add_completion=False,
)  # fmt: skip

PathArg = Annotated[Path, typer.Argument(help="Dataset folder, or a CSV/TSV/JSONL table or manifest file.")]


MAX_CLASS_ROWS = 40

# Per modality: the size statistics (label, profile key) and the other details shown under "Sizes".
_SIZE_ROWS: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "image": (
        [("width (px)", "width_px"), ("height (px)", "height_px")],
        [("modes", "modes"), ("formats", "formats"), ("distinct sizes", "distinct_sizes")],
    ),
    "audio": (
        [("duration (s)", "duration_s")],
        [("total (h)", "total_hours"), ("sample rates (Hz)", "sample_rates_hz"), ("channels", "channels")],
    ),
    "text": ([("length (chars)", "chars"), ("length (words)", "words")], [("duplicates", "n_duplicates")]),
}


@app.command("profile", cls=AdvisorCommand)
@dataset_options(PathArg, name="path")
def profile_cmd(
    dataset: DatasetSpec,
    task: TaskOpt = None,
    ignore_index: IgnoreIndexOpt = 255,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Profile a dataset: counts per class, imbalance, image sizes / text lengths / clip durations, skips;
    detection/segmentation data: objects per class, object sizes, pixel shares and counted warnings."""
    from advisor.api import profile

    Output(fmt).result(profile(dataset, task=task, ignore_index=ignore_index), _render_profile)


@app.command("sample", cls=AdvisorCommand)
@dataset_options(PathArg, name="path")
def sample_cmd(
    dataset: DatasetSpec,
    max_per_class: MaxPerClassOpt = None,
    max_samples: MaxSamplesOpt = None,
    seed: SeedOpt = 0,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Show the seeded, stratified subsample (sample ids and labels) that a run with these caps would use."""
    from advisor.api import sample

    result = sample(dataset, max_per_class=max_per_class, max_samples=max_samples, seed=seed)
    Output(fmt).result(result, _render_sample)


def _kv_table(title: str, rows: list[tuple[str, Any]]):
    from rich.table import Table

    t = Table(title=title, title_justify="left", header_style="bold", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for k, v in rows:
        t.add_row(k, "—" if v is None else safe(v))
    return t


def _stat_row(name: str, s: dict | None) -> list[str]:
    if not s:
        return [name, "—", "—", "—", "—", "—"]
    return [name] + [f"{s[k]:g}" for k in ("min", "mean", "median", "p95", "max")]


def _render_profile(p) -> None:
    from rich.table import Table

    if isinstance(p, dict):  # detection / segmentation (advisor.dense.profile)
        from advisor.cli.data_dense import render_dense_profile

        return render_dense_profile(p)
    con = stdout_console()
    rows = [
        ("path", p.root),
        ("modality", p.modality),
        ("layout", p.layout),
        ("samples", p.n_samples),
        ("classes", p.n_classes),
        ("imbalance (max/min)", None if p.imbalance_ratio is None else f"{p.imbalance_ratio:g}x"),
        ("splits", ", ".join(f"{k} {v}" for k, v in p.split_counts.items()) or None),
        ("skipped", p.n_skipped),
        ("fingerprint", p.fingerprint),
    ]
    con.print(_kv_table("Dataset", rows))

    if p.class_counts:
        t = Table(title="Classes", title_justify="left", header_style="bold")
        t.add_column("class")
        t.add_column("samples", justify="right")
        t.add_column("share %", justify="right")
        for sp in p.split_class_counts:
            t.add_column(f"{sp}", justify="right")
        total = max(p.n_samples, 1)
        items = list(p.class_counts.items())
        if len(items) > MAX_CLASS_ROWS:  # many classes: the largest and the smallest tell the story
            ranked = sorted(items, key=lambda kv: -kv[1])
            half = MAX_CLASS_ROWS // 2
            items = ranked[:half] + [None] + ranked[-half:]
            t.caption = f"{len(p.class_counts) - 2 * half} classes not shown; --format json lists all"
        for item in items:
            if item is None:
                t.add_row("…", "", "", *["" for _ in p.split_class_counts])
                continue
            c, n = item
            style = "yellow" if n <= 1 else ""
            splits = [str(p.split_class_counts[sp][c]) for sp in p.split_class_counts]
            t.add_row(safe(c), str(n), f"{100 * n / total:.1f}", *splits, style=style)
        con.print(t)

    stats = Table(title="Sizes", title_justify="left", header_style="bold")
    for col in ("quantity", "min", "mean", "median", "p95", "max"):
        stats.add_column(col, justify="left" if col == "quantity" else "right")
    extra: list[tuple[str, Any]] = []
    for modality, (stat_rows, extra_rows) in _SIZE_ROWS.items():
        figures = getattr(p, modality)
        if figures:
            for label, key in stat_rows:
                stats.add_row(*_stat_row(label, figures[key]))
            extra = [(label, figures[key]) for label, key in extra_rows]
            break
    if stats.row_count:
        con.print(stats)
        con.print(_kv_table("Details", extra))

    if p.skipped:
        t = Table(title=f"Skipped ({p.n_skipped})", title_justify="left", header_style="bold")
        t.add_column("path", overflow="fold")
        t.add_column("reason", overflow="fold")
        for s in p.skipped[:20]:
            t.add_row(safe(_rel(s["path"], p.root)), safe(s["reason"]))
        if p.n_skipped > 20:
            t.caption = f"{p.n_skipped - 20} more; use --format json for the full list (first 100)"
        con.print(t)
    for w in p.warnings:
        con.print(f"[yellow]warning:[/] {safe(w)}", highlight=False)


def _rel(path: str, root: str) -> str:
    prefix = root.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path


def _render_sample(r: dict) -> None:
    from rich.table import Table

    con = stdout_console()
    t = Table(
        title=f"{r['n_selected']} of {r['n_total']} samples (seed {r['seed']})", title_justify="left",
        header_style="bold",
    )  # fmt: skip
    t.add_column("id", overflow="fold")
    t.add_column("label")
    t.add_column("split")
    for s in r["samples"]:
        t.add_row(safe(s["id"]), safe(s["label"] or "—"), safe(s["split"] or "—"))
    con.print(t)
