"""`advisor sweep`: models x datasets through recommend into one folder, resumable, with one combined report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from advisor.cli._output import Output, OutputFormat, safe, stdout_console
from advisor.cli.options import (
    AdvisorCommand,
    BenchOpt,
    DeviceOpt,
    ExecutorOpt,
    FormatOpt,
    MaxPerClassOpt,
    MaxSamplesOpt,
    OfflineOpt,
    RayAddressOpt,
    RayShipDataOpt,
    SeedOpt,
    split_list,
)
from advisor.errors import UsageError

_Data = Annotated[
    list[Path] | None,
    typer.Option(
        "--data", "-d", help="A dataset folder or file (repeat for more datasets).", show_default=False
    ),
]
_File = Annotated[
    Path | None,
    typer.Argument(
        help="A sweep file (TOML, or YAML with PyYAML): datasets, models and options.", show_default=False
    ),
]
_Models = Annotated[
    str | None,
    typer.Option("--models", help="Comma-separated candidates of every dataset (default: each one's)."),
]
_Out = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="The sweep folder (sweep.json/.csv/.md/.html, runs/; default: the file's, else advisor-sweep).",
    ),
]
_Resume = Annotated[
    bool,
    typer.Option(
        "--resume/--no-resume", help="Read back datasets already done with the same settings and data."
    ),
]


app = typer.Typer()


@app.command("sweep", cls=AdvisorCommand)
def sweep_command(
    ctx: typer.Context,
    file: _File = None,
    data: _Data = None,
    models: _Models = None,
    out: _Out = None,
    device: DeviceOpt = "auto",
    max_samples: MaxSamplesOpt = None,
    max_per_class: MaxPerClassOpt = None,
    seed: SeedOpt = 0,
    offline: OfflineOpt = False,
    bench: BenchOpt = True,
    resume: _Resume = True,
    executor: ExecutorOpt = "serial",
    ray_address: RayAddressOpt = None,
    ray_ship_data: RayShipDataOpt = None,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Run recommend on every dataset (models x datasets) into one folder with a combined report; a rerun
    computes only what is missing."""
    from advisor.api import sweep
    from advisor.cli.recommend import _progress_fn
    from advisor.executors import get_executor

    if file is not None and (data or models):
        raise UsageError("give either a sweep file or --data/--models", hint="put the datasets in the file")
    if file is None and not data:
        raise UsageError("give datasets with --data DIR (repeatable), or a sweep file", hint="see --help")
    out_ = Output(fmt)
    runner = get_executor(executor, address=ray_address, ship_data=ray_ship_data)
    opts: dict[str, Any] = {
        "device": device, "max_samples": max_samples, "max_per_class": max_per_class, "seed": seed,
        "offline": offline, "bench": bench,
    }  # fmt: skip
    if (
        file is not None
    ):  # beside a file, only the options typed on the command line: they override the file's
        given = {k for k in opts if getattr(ctx.get_parameter_source(k), "name", None) == "COMMANDLINE"}
        opts = {k: v for k, v in opts.items() if k in given}
    opts["progress"] = fmt == OutputFormat.human
    res = sweep(
        [str(d) for d in data or []],
        models=tuple(split_list(models)),
        out=out,
        file=file,
        executor=runner,
        resume=resume,
        progress_fn=_progress_fn(out_),
        **opts,
    )
    out_.result(res.to_dict(), lambda d: _render(d))
    failed = [c for c in res.cells if c.status == "failed"]
    if failed and len(failed) == len(res.cells):
        raise UsageError(
            f"no dataset of the sweep could be run ({failed[0].name}: {failed[0].error})",
            hint="see the table above",
        )


def _render(d: dict[str, Any]) -> None:
    from rich.table import Table

    from advisor.sweep.report import FILES

    console = stdout_console()
    t = Table(title="sweep", title_justify="left", header_style="bold")
    for col in ("dataset", "task", "status", "winner", "seconds"):
        t.add_column(col)
    winners = {r["dataset"]: r for r in d["rows"] if r["rank"] == 1}
    for c in d["cells"]:
        w = winners.get(c["name"])
        win = (
            f"{w['model_id']} ({100 * w['value']:.1f}%)"
            if w and w["value"] is not None
            else (c["error"] or "—")
        )
        t.add_row(
            safe(c["name"]), safe(c["task"] or "—"), safe(c["status"]), safe(win), f"{c['seconds']:.1f}"
        )
    console.print(t)
    for c in d["cells"]:
        if c.get("headline"):
            console.print(f"  [bold]{safe(c['name'])}[/]: {safe(c['headline'])}", highlight=False)
    where = Path(d["out"] or ".")
    console.print(
        f"report: {safe(where / FILES['html'])}  (and {', '.join(sorted(FILES.values()))})", highlight=False
    )
