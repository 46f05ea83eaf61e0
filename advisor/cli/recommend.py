"""CLI for `advisor recommend` (rank models for a dataset) and `advisor report` (re-render a stored run)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from advisor.cli._output import Output, OutputFormat, print_each, safe, stdout_console, strip_control
from advisor.cli.options import (
    AdvisorCommand,
    BatchSizeOpt,
    BenchOpt,
    DeviceOpt,
    ExecutorOpt,
    FormatOpt,
    GroupColumnOpt,
    GroupPatternOpt,
    IgnoreIndexOpt,
    LabelColumnOpt,
    LicenseOpt,
    MaxParamsOpt,
    MaxPerClassOpt,
    MaxSamplesOpt,
    MaybeDataOpt,
    ModalityOpt,
    ModelsOpt,
    OfflineOpt,
    RayAddressOpt,
    RayShipDataOpt,
    RuntimeOpt,
    ScoresOpt,
    SeedOpt,
    SplitColumnOpt,
    SplitOpt,
    TaskOpt,
    TextColumnOpt,
    ThreadsOpt,
    parse_count,
    split_list,
)
from advisor.cli.recommend_dense import render_dense_results
from advisor.errors import AdvisorError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from advisor.dense.results import DenseResults
    from advisor.recommend.config import Plan
    from advisor.recommend.results import RecommendResults


# Options only `recommend` has. Parameter names are `RunConfig` field names, so the config is built from them.
_DataArg = Annotated[
    Path | None, typer.Argument(metavar="[DATA]", help="Dataset (same as --data).", show_default=False)
]
_Demo = Annotated[
    bool,
    typer.Option(
        "--demo",
        help="Use the bundled Fashion-MNIST sample (offline, CPU); `--demo detection` / `--demo segmentation`: "
        "the generated multi-object demos.",
    ),
]
DEMO_TASKS = ("detection", "segmentation")
_MaxLatency = Annotated[
    float | None, typer.Option("--max-latency-ms", help="Drop models slower than this (ms p50).")
]
_LatencyBatch = Annotated[
    int, typer.Option("--latency-batch-size", help="Batch size the latency is measured at.")
]
_MaxMemory = Annotated[
    float | None, typer.Option("--max-memory-mb", help="Largest measured peak memory (MB).")
]
_Budget = Annotated[
    float | None, typer.Option("--budget", help="Time budget in minutes (sets subsample and candidates).")
]
_DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan and its estimated cost only.")]
_Out = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Run directory (default: ./advisor-runs/TIMESTAMP-DATASET)."),
]
_NoOut = Annotated[bool, typer.Option("--no-out", help="Do not write a run directory.")]
_Shortlist = Annotated[
    int | None,
    typer.Option("--shortlist", help="How many top-predicted models get a linear probe (default 8)."),
]
_MaxCandidates = Annotated[int | None, typer.Option("--max-candidates", help="Cap on candidates considered.")]
_Folds = Annotated[int, typer.Option("--folds", help="Cross-validation folds of the linear probe.")]
_Rebench = Annotated[
    bool, typer.Option("--rebench", help="Re-measure latency even when a reliable stored figure exists.")
]
_Baselines = Annotated[
    bool, typer.Option("--baselines/--no-baselines", help="Probe no-pretraining floors for reference.")
]
_RoiProbe = Annotated[
    bool,
    typer.Option(
        "--roi-probe/--no-roi-probe",
        help="Detection: run the ROI probe (class + box-regression LogME on pyramid features) beside the crop "
        "probe; off saves about half the proxy time.",
    ),
]
_Combine = Annotated[
    Literal["zscore", "rank"], typer.Option("--combine", help="zscore | rank combination of signals.")
]
_CandidateTimeout = Annotated[
    float | None,
    typer.Option(
        "--candidate-timeout",
        metavar="SECONDS",
        help="Give up on a candidate whose features + scores take longer.",
    ),
]
_FinetuneTop = Annotated[
    int,
    typer.Option(
        "--finetune-top", help="Fine-tune the K best candidates and compare with their linear probes."
    ),
]
_FinetuneEpochs = Annotated[int, typer.Option("--finetune-epochs", help="Epochs of each --finetune-top run.")]
_FinetuneUnfreeze = Annotated[
    str | None, typer.Option("--finetune-unfreeze", help="head | last-N | all for --finetune-top (default: the strategy advice's).")
]  # fmt: skip


# ----------------------------------------------------------------------------------------------- human renderers
def _render_plan(plan: Plan) -> None:
    from rich.table import Table

    con = stdout_console()
    d = plan.to_dict()
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
    print_each(con, "  • ", d["stages"])
    print_each(con, "[yellow]warning:[/] ", d.get("warnings") or [])
    budget = d.get("budget_seconds")
    con.print(
        f"Estimated cost: [bold]{d['estimated_seconds'] / 60:.1f} min[/]"
        + (f" (budget {budget / 60:.1f} min)" if budget else "")
        + "  [dim](rough cost model; --dry-run ran nothing)[/]"
    )


def _render_results(res: RecommendResults) -> None:
    from rich.table import Table

    from advisor.report.agreement import agreement_summary
    from advisor.report.render import (
        acc_with_ci,
        latency_batch,
        latency_cell,
        num,
        params_m,
        pct,
        published_cell,
    )

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
        "Published (%)",
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
            published_cell(c),
            params_m(c.n_params),
            safe(c.license or c.license_class or "-"),
            "★" if c.pareto else "",
            "-" if c.tie_group is None else str(c.tie_group),
        )
    con.print(t)
    for c in res.ranked[:5]:
        reason = safe(c.reasons[0]) if c.reasons else ""
        con.print(f"  [bold]{safe(c.model_id)}[/] (#{c.rank}): {reason}", highlight=False)
    if conf := agreement_summary(res):
        con.print(f"[bold]{safe(conf)}[/]", highlight=False)
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
        why = res.advice.get("next_why")
        if res.advice.get("next_command"):
            lead = f"  next ({strip_control(why)}): " if why else "  next: "
            con.print(lead + strip_control(res.advice["next_command"]), highlight=False, markup=False)
        elif why:
            con.print(f"  next: {strip_control(why)}", highlight=False, markup=False)
        if res.advice.get("train_command"):
            train = strip_control(res.advice["train_command"])
            con.print(f"  to train a pretrained model anyway: {train}", highlight=False, markup=False)
        for ft in res.advice.get("finetune_check") or []:
            line = ft.get("summary") or f"{ft['model_id']}: fine-tuning failed ({ft.get('error')})"
            con.print("[bold]Fine-tune check:[/] " + safe(line), highlight=False)
    print_each(con, "[yellow]note:[/] ", res.notes)
    tot = res.timings.get("total")
    if res.run_dir:
        con.print(
            f"Run directory: [bold]{safe(res.run_dir)}[/] (report.html, report.md, results.json, results.csv)"
            + (f"; {tot:.1f} s" if tot else "")
        )


# ----------------------------------------------------------------------------------------------- commands
app = typer.Typer()


@app.command("recommend", cls=AdvisorCommand, help="Rank pretrained models for your data on this hardware.")
def recommend_command(
    data_arg: _DataArg = None,
    data: MaybeDataOpt = None,
    demo: _Demo = False,
    task: TaskOpt = None,
    ignore_index: IgnoreIndexOpt = None,
    roi_probe: _RoiProbe = True,
    models: ModelsOpt = None,
    device: DeviceOpt = "auto",
    max_latency_ms: _MaxLatency = None,
    latency_batch_size: _LatencyBatch = 1,
    max_params: MaxParamsOpt = None,
    max_memory_mb: _MaxMemory = None,
    license: LicenseOpt = "any",
    offline: OfflineOpt = False,
    budget_minutes: _Budget = None,
    dry_run: _DryRun = False,
    out: _Out = None,
    no_out: _NoOut = False,
    shortlist: _Shortlist = None,
    max_candidates: _MaxCandidates = None,
    max_samples: MaxSamplesOpt = None,
    max_per_class: MaxPerClassOpt = None,
    scores: ScoresOpt = None,
    folds: _Folds = 5,
    seed: SeedOpt = 0,
    bench: BenchOpt = True,
    bench_threads: ThreadsOpt = None,
    rebench: _Rebench = False,
    baselines: _Baselines = True,
    combine: _Combine = "zscore",
    modality: ModalityOpt = None,
    text_column: TextColumnOpt = None,
    label_column: LabelColumnOpt = None,
    split: SplitOpt = None,
    group_column: GroupColumnOpt = None,
    split_column: SplitColumnOpt = None,
    group_pattern: GroupPatternOpt = None,
    batch_size: BatchSizeOpt = 32,
    runtime: RuntimeOpt = "auto",
    candidate_timeout_s: _CandidateTimeout = None,
    executor: ExecutorOpt = "serial",
    ray_address: RayAddressOpt = None,
    ray_ship_data: RayShipDataOpt = None,
    finetune_top: _FinetuneTop = 0,
    finetune_epochs: _FinetuneEpochs = 3,
    finetune_unfreeze: _FinetuneUnfreeze = None,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Rank pretrained models for your labelled data on this hardware, and say how to adapt the winner."""
    options = dict(locals())  # the parameters: `RunConfig` fields, plus the few that `_run_options` converts
    from advisor.api import recommend, run_config
    from advisor.dense.results import DenseResults
    from advisor.errors import ResultsNotSaved
    from advisor.executors import get_executor
    from advisor.recommend.results import RecommendResults

    if data is not None and data_arg is not None and data != data_arg:
        raise UsageError("the dataset is given twice", hint="use either --data DIR or a positional DIR")
    path = data if data is not None else data_arg
    demo_arg: bool | str = demo
    if demo and data_arg is not None:  # `--demo detection`: the dense demo, not a dataset folder
        if str(data_arg) not in DEMO_TASKS or data is not None:
            raise UsageError(
                f"--demo takes no dataset (got {str(data_arg)!r})",
                hint="use --demo, --demo detection or --demo segmentation",
            )
        demo_arg, path = str(data_arg), None
    if path is None and not demo:
        raise UsageError(
            "give a dataset with --data DIR, or --demo", hint="e.g. `advisor recommend --data ./my_images`"
        )
    # the executor is not a RunConfig field: in no cache key
    runner = get_executor(executor, address=ray_address, ship_data=ray_ship_data)
    cfg = run_config(path, demo=demo_arg, **_run_options(options))
    out_ = Output(fmt)
    try:
        res = recommend(config=cfg, progress_fn=_progress_fn(out_), executor=runner)
    except ResultsNotSaved as e:  # the work is done: show it, then the one-line error (non-zero exit)
        if isinstance(e.results, RecommendResults):
            done = e.results
            out_.result(done.to_dict() | {"run_dir": None}, lambda _d: _render_results(done))
        elif isinstance(e.results, DenseResults):
            dense = e.results
            out_.result(dense.to_dict() | {"run_dir": None}, lambda _d: render_dense_results(dense))
        raise
    if isinstance(res, DenseResults):
        _show_dense(out_, res)
        return
    if not isinstance(res, RecommendResults):  # --dry-run: the plan
        plan = res
        out_.result(plan.to_dict(), lambda _d: _render_plan(plan))
        return
    out_.result(res.to_dict() | {"run_dir": res.run_dir}, lambda _d: _render_results(res))
    if not res.ranked:
        why = "; ".join(f"{c.model_id}: {c.error or (c.reasons or ['?'])[0]}" for c in res.candidates[:5])
        raise AdvisorError(
            f"no candidate could be ranked ({why or 'no candidates'})",
            hint="see the notes above; name other models with --models or relax the constraints",
        )


_CLI_ONLY = ("data_arg", "data", "demo", "no_out", "fmt", "executor", "ray_address", "ray_ship_data")


def _run_options(p: dict[str, Any]) -> dict[str, Any]:
    """`recommend_command`'s parameters as `RunConfig` fields: the CLI-only ones dropped, the rest converted."""
    return {k: v for k, v in p.items() if k not in _CLI_ONLY} | {
        "models": split_list(p["models"]),
        "scores": split_list(p["scores"]) or None,
        "max_params": parse_count(p["max_params"]),
        "out": None if p["no_out"] else (str(p["out"]) if p["out"] else "auto"),
        "progress": p["fmt"] == OutputFormat.human,
    }


def _show_dense(out: Output, res: DenseResults) -> None:
    """Print a dense run; no measured row at all is an error (non-zero exit) after the output."""
    out.result(res.to_dict() | {"run_dir": res.run_dir}, lambda _d: render_dense_results(res))
    if res.verdict.get("winner") is None:
        why = "; ".join(f"{c.model_id}: {c.error}" for c in res.candidates if c.error)[:400]
        raise AdvisorError(
            f"no {res.task} candidate could be measured ({why or 'no candidates'})",
            hint="see the notes above; name other models with --models or relax the constraints",
        )


def _progress_fn(out: Output) -> Callable[[str], None] | None:
    """Progress lines on stderr for people (or whenever stderr is a terminal); none for piped JSON."""
    if not out.human and not sys.stderr.isatty():
        return None
    return out.note


@app.command(
    "report", cls=AdvisorCommand, help="Re-render a stored recommend run (markdown, CSV, JSON, HTML)."
)
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `advisor recommend`.")],
    fmt: Annotated[
        Literal["human", "json", "md", "csv", "html"],
        typer.Option("--format", "-f", help="human | json | md | csv | html.", case_sensitive=False),
    ] = "human",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")
    ] = None,
    rewrite: Annotated[
        bool, typer.Option("--rewrite", help="Re-render all report files in RUN_DIR.")
    ] = False,
) -> None:
    """Re-render a stored run (no recomputation): a table, JSON, markdown, CSV or the single-file HTML."""
    from advisor.api import report
    from advisor.dense.results import DenseResults
    from advisor.report.dense import render_dense
    from advisor.report.render import render

    res = report(run_dir, rewrite=rewrite)
    if fmt in ("human", "json") and out is None:
        if isinstance(res, DenseResults):
            dense = res
            Output(fmt).result(dense.to_dict(), lambda _d: render_dense_results(dense))
        else:
            classified = res
            Output(fmt).result(classified.to_dict(), lambda _d: _render_results(classified))
        return
    kind = "json" if fmt == "human" else fmt
    text = render_dense(res, kind) if isinstance(res, DenseResults) else render(res, kind)
    if out is None:
        Output.text(text)
        return
    from advisor.io import atomic_write_text

    atomic_write_text(out, text)
    stdout_console().print(f"wrote {safe(out)}", highlight=False)
