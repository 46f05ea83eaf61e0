"""CLI for `advisor recommend` (rank models for a dataset) and `advisor report` (re-render a stored run)."""

from __future__ import annotations

import enum
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from advisor.cli._output import (
    DebugOption,
    FormatOption,
    OutputFormat,
    emit,
    handle_errors,
    safe,
    stdout_console,
    strip_control,
)
from advisor.errors import AdvisorError, UsageError

_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([kKmMbBgG]?)\s*$")
_MULT = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}


def parse_count(text: str | None) -> float | None:
    """'25M' -> 25e6, '1.5e7' -> 1.5e7, '300k' -> 3e5 (None passes through)."""
    if text is None:
        return None
    m = _SIZE_RE.match(text)
    if not m:
        raise UsageError(
            f"cannot read a parameter count from {text!r}", hint="e.g. --max-params 25M or 2.5e7"
        )
    return float(m.group(1)) * _MULT[m.group(2).lower()]


def _split_models(values: list[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for v in values or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return tuple(out)


class LicenseChoice(str, enum.Enum):
    any = "any"
    permissive = "permissive"
    commercial = "commercial"


class CombineChoice(str, enum.Enum):
    zscore = "zscore"
    rank = "rank"


class ReportFormat(str, enum.Enum):
    human = "human"
    json = "json"
    md = "md"
    csv = "csv"
    html = "html"


# ----------------------------------------------------------------------------------------------- human renderers
def _render_plan(plan: Any) -> None:
    from rich.table import Table

    con = stdout_console()
    d = plan.to_dict() if hasattr(plan, "to_dict") else plan
    ds = d["dataset"]
    con.print(
        f"[bold]Plan[/] for {safe(ds['root'])} ({safe(ds['modality'])}, {ds['n_samples']} samples, "
        f"{ds['n_classes']} classes); device {safe(d['device'])}, offline {d['offline']}",
        highlight=False,
    )
    t = Table(title="Candidates")
    for h in ("Model", "Origin", "Params (M)", "Est. time (s)"):
        t.add_column(h)
    for c in d["candidates"]:
        n = c.get("n_params")
        t.add_row(
            safe(c["model_id"]),
            safe(c["origin"]),
            "-" if n is None else f"{n / 1e6:.1f}",
            f"{c['estimated_seconds']:.0f}",
        )
    con.print(t)
    if d["excluded"]:
        con.print(
            f"[dim]{len(d['excluded'])} excluded, e.g. {safe(d['excluded'][0]['model_id'])}: "
            f"{safe(d['excluded'][0]['reason'])}[/]",
            highlight=False,
        )
    for s in d["stages"]:
        con.print(f"  • {safe(s)}", highlight=False)
    for w in d.get("warnings") or []:
        con.print(f"[yellow]warning:[/] {safe(w)}", highlight=False)
    budget = d.get("budget_seconds")
    con.print(
        f"Estimated cost: [bold]{d['estimated_seconds'] / 60:.1f} min[/]"
        + (f" (budget {budget / 60:.1f} min)" if budget else "")
        + "  [dim](rough cost model; --dry-run ran nothing)[/]"
    )


def _render_results(res: Any) -> None:
    from rich.table import Table

    from advisor.report.render import acc_with_ci, latency_batch, latency_cell, num, params_m, pct

    con = stdout_console()
    bs = latency_batch(res)
    if (res.advice or {}).get("headline"):
        con.print(f"[bold red]First:[/] {safe(res.advice['headline'])}", highlight=False)
    t = Table(title=f"advisor recommend: {safe(res.dataset.get('name'))}")
    for h in (
        "#",
        "Model",
        "Probe acc (%, 95% CI)",
        "Macro-F1 (%)",
        f"Latency p50 (ms, bs {bs})",
        "Peak mem (MB)",
        "Params (M)",
        "License",
        "Pareto",
        "Tie",
    ):
        t.add_column(h, overflow="fold")
    for c in res.ranked:
        t.add_row(
            str(c.rank),
            safe(c.model_id),
            acc_with_ci(c),
            pct((c.probe or {}).get("macro_f1")),
            latency_cell(c),
            num(c.memory_mb, "{:.0f}"),
            params_m(c.n_params),
            safe(c.license or c.license_class or "-"),
            "★" if c.pareto else "",
            "-" if c.tie_group is None else str(c.tie_group),
        )
    con.print(t)
    for c in res.ranked[:5]:
        reason = safe(c.reasons[0]) if c.reasons else ""
        con.print(f"  [bold]{safe(c.model_id)}[/] (#{c.rank}): {reason}", highlight=False)
    others = [c for c in res.candidates if c.rank is None]
    if others:
        t2 = Table(title="Not ranked")
        for h in ("Model", "Status", "Probe acc (%)", "Predicted score", "Why"):
            t2.add_column(h, overflow="fold")
        for c in others:
            t2.add_row(
                safe(c.model_id),
                safe(c.status),
                acc_with_ci(c),
                num(c.predicted.get("score"), "{:+.2f}"),
                safe((c.error or (c.reasons[0] if c.reasons else ""))[:160]),
            )
        con.print(t2)
    if res.advice:
        con.print("[bold]Strategy:[/] " + safe(res.advice.get("summary")), highlight=False)
        if res.advice.get("next_command"):
            con.print(f"  next: {strip_control(res.advice['next_command'])}", highlight=False, markup=False)
        for ft in res.advice.get("finetune_check") or []:
            line = ft.get("summary") or f"{ft['model_id']}: fine-tuning failed ({ft.get('error')})"
            con.print("[bold]Fine-tune check:[/] " + safe(line), highlight=False)
    for n in res.notes:
        con.print(f"[yellow]note:[/] {safe(n)}", highlight=False)
    tot = res.timings.get("total")
    if res.run_dir:
        con.print(
            f"Run directory: [bold]{safe(res.run_dir)}[/] (report.html, report.md, results.json, results.csv)"
            + (f"; {tot:.1f} s" if tot else "")
        )


# ----------------------------------------------------------------------------------------------- commands
def recommend_command(
    data_arg: Annotated[
        Path | None,
        typer.Argument(metavar="[DATA]", help="Dataset (same as --data).", show_default=False),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", "-d", help="Dataset: image/audio class folders, CSV/JSONL/TSV table or manifest."
        ),
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Use the bundled Fashion-MNIST sample (offline, CPU).")
    ] = False,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models", "-m", help="Candidate ids or local model files (comma-separated or repeated)."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps.")] = "auto",
    max_latency_ms: Annotated[
        float | None, typer.Option(help="Drop models slower than this (ms p50).")
    ] = None,
    latency_batch_size: Annotated[int, typer.Option(help="Batch size the latency is measured at.")] = 1,
    max_params: Annotated[str | None, typer.Option(help="Largest parameter count, e.g. 25M.")] = None,
    max_memory_mb: Annotated[float | None, typer.Option(help="Largest measured peak memory (MB).")] = None,
    license: Annotated[
        LicenseChoice, typer.Option(help="any | permissive | commercial.")
    ] = LicenseChoice.any,
    offline: Annotated[
        bool, typer.Option("--offline", help="Only locally available weights; no network.")
    ] = False,
    budget: Annotated[
        float | None, typer.Option(help="Time budget in minutes (sets subsample and candidates).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and its estimated cost only.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default: ./advisor-runs/TIMESTAMP-DATASET).")
    ] = None,
    no_out: Annotated[bool, typer.Option("--no-out", help="Do not write a run directory.")] = False,
    shortlist: Annotated[
        int | None, typer.Option(help="How many top-predicted models get a linear probe.")
    ] = None,
    max_candidates: Annotated[int | None, typer.Option(help="Cap on candidates considered.")] = None,
    max_samples: Annotated[int | None, typer.Option(help="Subsample cap for scores and probes.")] = None,
    max_per_class: Annotated[int | None, typer.Option(help="Per-class subsample cap.")] = None,
    scores: Annotated[
        str | None, typer.Option(help="Comma-separated score names (default: a cheap set).")
    ] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds of the linear probe.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for the subsample, folds and bootstrap.")] = 0,
    bench: Annotated[bool, typer.Option("--bench/--no-bench", help="Measure latency and memory.")] = True,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads while timing latency (torch.set_num_threads).")
    ] = None,
    rebench: Annotated[
        bool, typer.Option("--rebench", help="Re-measure latency even when a reliable stored figure exists.")
    ] = False,
    baselines: Annotated[
        bool, typer.Option("--baselines/--no-baselines", help="Probe no-pretraining floors for reference.")
    ] = True,
    combine: Annotated[
        CombineChoice, typer.Option(help="zscore | rank combination of signals.")
    ] = CombineChoice.zscore,
    modality: Annotated[str | None, typer.Option(help="Force image | text | audio.")] = None,
    text_column: Annotated[str | None, typer.Option(help="Text column of a table dataset.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of a table dataset.")] = None,
    split: Annotated[str | None, typer.Option(help="Use only this split (train/val/test).")] = None,
    group_column: Annotated[
        str | None,
        typer.Option(
            help="Table/manifest column with each sample's group (speaker, patient): group-aware folds."
        ),
    ] = None,
    group_pattern: Annotated[
        str | None,
        typer.Option(help="Regex on file names whose first group (else the match) is the sample's group."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Feature-extraction batch size.")] = 32,
    finetune_top: Annotated[
        int, typer.Option(help="Fine-tune the K best candidates and compare with their linear probes.")
    ] = 0,
    finetune_epochs: Annotated[int, typer.Option(help="Epochs of each --finetune-top run.")] = 3,
    finetune_unfreeze: Annotated[
        str | None,
        typer.Option(help="head | last-N | all for --finetune-top (default: the strategy advice's)."),
    ] = None,
    fmt: FormatOption = OutputFormat.human,
    debug: DebugOption = False,
) -> None:
    """Rank pretrained models for your labelled data on this hardware, and say how to adapt the winner."""
    with handle_errors(debug):
        from advisor.recommend.run import recommend

        if data is not None and data_arg is not None and data != data_arg:
            raise UsageError("the dataset is given twice", hint="use either --data DIR or a positional DIR")
        data = data if data is not None else data_arg
        if data is None and not demo:
            raise UsageError(
                "give a dataset with --data DIR, or --demo",
                hint="e.g. `advisor recommend --data ./my_images`",
            )
        opts: dict[str, Any] = {
            "models": _split_models(models),
            "device": device,
            "max_latency_ms": max_latency_ms,
            "latency_batch_size": latency_batch_size,
            "max_params": parse_count(max_params),
            "max_memory_mb": max_memory_mb,
            "license": license.value,
            "budget_minutes": budget,
            "dry_run": dry_run,
            "out": None if no_out else (str(out) if out else "auto"),
            "shortlist": shortlist,
            "max_candidates": max_candidates,
            "max_samples": max_samples,
            "max_per_class": max_per_class,
            "folds": folds,
            "seed": seed,
            "bench": bench,
            "bench_threads": threads,
            "rebench": rebench,
            "baselines": baselines,
            "combine": combine.value,
            "modality": modality,
            "text_column": text_column,
            "label_column": label_column,
            "split": split,
            "group_column": group_column,
            "group_pattern": group_pattern,
            "batch_size": batch_size,
            "finetune_top": finetune_top,
            "finetune_epochs": finetune_epochs,
            "finetune_unfreeze": finetune_unfreeze,
        }
        if offline:
            opts["offline"] = True
        opts["progress"] = fmt == OutputFormat.human
        if scores:
            opts["scores"] = tuple(s.strip() for s in scores.split(",") if s.strip())
        progress_fn = None
        if fmt == OutputFormat.human or sys.stderr.isatty():
            from advisor.cli._output import stderr_console

            err = stderr_console()

            def progress_fn(msg: str) -> None:
                err.print(f"[dim]{safe(msg)}[/]", highlight=False)

        res = recommend(data, demo=demo, progress_fn=progress_fn, **opts)
        if dry_run:
            emit(res.to_dict(), fmt, lambda _d: _render_plan(res))
            return
        payload = res.to_dict() | {"run_dir": res.run_dir}
        emit(payload, fmt, lambda _d: _render_results(res))
        if not res.ranked:
            why = "; ".join(f"{c.model_id}: {c.error or (c.reasons or ['?'])[0]}" for c in res.candidates[:5])
            raise AdvisorError(
                f"no candidate could be ranked ({why or 'no candidates'})",
                hint="see the notes above; name other models with --models or relax the constraints",
            )


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `advisor recommend`.")],
    fmt: Annotated[
        ReportFormat,
        typer.Option("--format", "-f", help="human | json | md | csv | html.", case_sensitive=False),
    ] = ReportFormat.human,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    rewrite: Annotated[
        bool, typer.Option("--rewrite", help="Re-render all report files in RUN_DIR.")
    ] = False,
    debug: DebugOption = False,
) -> None:
    """Re-render a stored run (no recomputation): a table, JSON, markdown, CSV or the single-file HTML."""
    with handle_errors(debug):
        from advisor.recommend.results import load_results
        from advisor.report.render import render, write_run_dir

        res = load_results(run_dir)
        if rewrite:
            write_run_dir(res, res.run_dir or run_dir)
        if fmt in (ReportFormat.human, ReportFormat.json) and output is None:
            emit(res.to_dict(), OutputFormat(fmt.value), lambda _d: _render_results(res))
            return
        text = render(res, "json" if fmt == ReportFormat.human else fmt.value)
        if output is not None:
            from advisor.io import atomic_write_text

            atomic_write_text(output, text)
            stdout_console().print(f"wrote {safe(output)}", highlight=False)
        else:
            sys.stdout.write(text)


def register(app: typer.Typer) -> None:
    """Add `recommend` and `report` to the root app."""
    app.command("recommend", help="Rank pretrained models for your data on this hardware.")(recommend_command)
    app.command("report", help="Re-render a stored recommend run (markdown, CSV, JSON, HTML).")(
        report_command
    )
