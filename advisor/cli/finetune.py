"""`advisor finetune`: fine-tune a model on a labelled dataset (thin wrapper over advisor.finetune.finetune)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from advisor.cli._output import Output, OutputFormat, print_each, safe, stderr_console, stdout_console
from advisor.cli.options import (
    AdvisorCommand,
    DataOpt,
    DeviceOpt,
    FormatOpt,
    GroupPatternOpt,
    MaxPerClassOpt,
    ModelOpt,
    OfflineOpt,
    PretrainedOpt,
    ProgressOpt,
    WorkersOpt,
    dataset_options,
)

if TYPE_CHECKING:
    from rich.progress import TaskID

    from advisor.data.spec import DatasetSpec


app = typer.Typer()


def default_out_dir(data: Path, model: str, unfreeze: str, seed: int) -> Path:
    """A stable run folder under the cache (see `advisor.api.default_finetune_dir`)."""
    from advisor.api import default_finetune_dir

    return default_finetune_dir(data, model, unfreeze, seed)


class _ProgressBar:
    """Renders the loop's progress events with Rich on stderr: a bar over all steps, loss, accuracy, time left."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = stderr_console()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("left ~{task.fields[eta]}"),
            console=self.console,
            transient=False,
        )
        self.task: TaskID | None = None
        self.steps = 1

    @staticmethod
    def _fmt_s(s: float | None) -> str:
        if s is None:
            return "?"
        s = int(max(0, s))
        return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e["event"]
        if kind == "start":
            self.steps = e["steps_per_epoch"]
            self.progress.start()
            done = (e["resumed_from"] or 0) * self.steps
            self.task = self.progress.add_task(
                "fine-tuning", total=e["epochs"] * self.steps, completed=done, stats="", eta="?"
            )
            if e["resumed_from"]:
                self.console.print(f"resuming after epoch {e['resumed_from']}")
        elif kind == "step" and self.task is not None:
            self.progress.update(
                self.task,
                total=e["epochs"] * self.steps,
                completed=(e["epoch"] - 1) * self.steps + e["step"],
                description=f"epoch {e['epoch']}/{e['epochs']}",
                stats=f"loss {e['loss']:.3f} acc {e['accuracy']:.1%}",
                eta=self._fmt_s(e["eta_seconds"]),
            )
        elif kind == "epoch" and self.task is not None:
            r = e["record"]
            self.progress.update(
                self.task,
                total=e["epochs"] * self.steps,
                completed=r.epoch * self.steps,
                eta=self._fmt_s(e["eta_seconds"]),
            )
            self.progress.console.print(
                f"epoch {r.epoch}: train loss {r.train_loss:.3f}, val loss {r.val_loss:.3f}, "
                f"val acc {r.val_accuracy:.1%} ({r.seconds:.1f} s)"
                + (" *best*" if e["best_epoch"] == r.epoch else "")
            )
        elif kind == "oom":
            self.progress.console.print(
                f"[yellow]out of memory:[/] micro-batch {e['micro_batch']}, "
                f"accumulating {e['accumulation_steps']} steps"
            )
        elif kind == "replan":
            self.progress.console.print(f"[yellow]budget:[/] the run is re-planned to {e['epochs']} epochs")
        elif kind == "stop" and e["reason"] != "completed":
            self.progress.console.print(f"stopping after epoch {e['epoch']}: {e['reason'].replace('_', ' ')}")

    def close(self) -> None:
        self.progress.stop()


def _render(result: dict[str, Any]) -> None:
    from rich.table import Table

    console = stdout_console()
    lo, hi = result["val_accuracy_ci"]
    peak = result["peak_memory_mb"]
    t = Table(title=f"Fine-tuning {safe(result['model_id'])} ({safe(result['unfreeze'])})", show_header=True)
    for col in (
        "val acc (%)",
        "95% CI (%)",
        "best epoch",
        "epochs run",
        "stopped",
        "s/epoch (s)",
        "total (s)",
        "peak mem (MB)",
        "trainable (M params)",
    ):
        t.add_column(col, justify="right")
    t.add_row(
        f"{result['val_accuracy'] * 100:.1f}",
        f"{lo * 100:.1f}-{hi * 100:.1f}",
        str(result["best_epoch"]),
        f"{result['epochs_run']}/{result['config']['epochs']}",
        result["stopped_reason"].replace("_", " "),
        f"{result['seconds_per_epoch']:.1f}",
        f"{result['total_seconds']:.1f}",
        f"{peak:.0f}" if peak is not None else "-",
        f"{result['trainable_params'] / 1e6:.3g}",  # a head of 8 classes is 0.00308, not 0.00
    )
    console.print(t)
    h = Table(title="Per epoch", show_header=True)
    for col in (
        "epoch",
        "train loss",
        "train acc (%)",
        "val loss",
        "val acc (%)",
        "head lr (end)",
        "time (s)",
    ):
        h.add_column(col, justify="right")
    for r in result["history"]:
        h.add_row(
            str(r["epoch"]) + ("*" if r["epoch"] == result["best_epoch"] else ""),
            f"{r['train_loss']:.3f}",
            f"{r['train_accuracy'] * 100:.1f}",
            f"{r['val_loss']:.3f}",
            f"{r['val_accuracy'] * 100:.1f}",
            f"{r['lr_head']:.2e}",
            f"{r['seconds']:.1f}",
        )
    console.print(h)
    console.print(
        f"{result['n_train']} train / {result['n_val']} val items ({safe(result['split_source'])} split), "
        f"{safe(result['device'])} {safe(result['precision'])}, micro-batch {result['micro_batch_size']} x "
        f"{result['grad_accum_steps']} accumulation, peak memory = {result['peak_memory_kind']}"
    )
    groups = result.get("groups")
    if groups:
        console.print(
            f"validation holds out {groups['val']} of {groups['train'] + groups['val']} groups "
            f"({safe(groups['by'])}): {safe(', '.join(groups['val_groups']))}",
            highlight=False,
        )
    print_each(console, "note: ", result["notes"])
    if result["checkpoint"]:
        console.print(f"best checkpoint: {safe(result['checkpoint'])}", highlight=False)
    if result["out_dir"]:
        console.print(f"result: {safe(Path(result['out_dir']) / 'result.json')}", highlight=False)


_Unfreeze = Annotated[
    str, typer.Option("--unfreeze", "-u", help="What trains: head, last-N (e.g. last-2) or all.")
]
_Epochs = Annotated[
    int | None,
    typer.Option("--epochs", "-e", help="Maximum epochs (default: 30 for --unfreeze head, 10 otherwise)."),
]
_Budget = Annotated[
    float | None, typer.Option("--budget", help="Wall-time cap in minutes (epochs are reduced to fit).")
]
_BatchSize = Annotated[int, typer.Option("--batch-size", "-b", help="Effective batch size per step.")]
_Lr = Annotated[
    float | None,
    typer.Option("--lr", help="Head learning rate (AdamW; default: 0.05 head, 1e-3 last-N, 5e-4 all)."),
]
_BackboneLr = Annotated[
    float, typer.Option("--backbone-lr-mult", help="Backbone lr = head lr x this factor.")
]
_WeightDecay = Annotated[float, typer.Option("--weight-decay", help="AdamW weight decay.")]
_Patience = Annotated[
    int, typer.Option("--patience", help="Early stopping: epochs without val-accuracy gain (0 = off).")
]
_ValFraction = Annotated[
    float,
    typer.Option(
        "--val-fraction",
        help="Held out per class (with a group option: in whole groups) when the data has no val split.",
    ),
]
_Augment = Annotated[
    bool | None,
    typer.Option(
        "--augment/--no-augment",
        help="Light training augmentation (default: off for --unfreeze head, so features are computed once).",
    ),
]
_Seed = Annotated[int, typer.Option("--seed", help="Seed for split, order, augmentation and head init.")]
_Out = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Run folder (checkpoint, state, result.json); default: cache."),
]
_Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue the run in --out from its last completed epoch (a finished run is returned as is).",
    ),
]


@app.command(
    "finetune",
    cls=AdvisorCommand,
    help="Fine-tune a model on your labelled data (new linear head; frozen, last-N or all backbone blocks) "
    "and report validation accuracy with a 95% interval. Ctrl-C keeps the best checkpoint; --resume continues.",
    no_args_is_help=True,
)
@dataset_options(DataOpt, "modality", "text_column", "label_column", "group_column", "split_column")
def finetune_command(
    dataset: DatasetSpec,
    model: ModelOpt,
    unfreeze: _Unfreeze = "head",
    epochs: _Epochs = None,
    budget_minutes: _Budget = None,
    device: DeviceOpt = "auto",
    batch_size: _BatchSize = 32,
    lr: _Lr = None,
    backbone_lr_mult: _BackboneLr = 0.1,
    weight_decay: _WeightDecay = 0.01,
    patience: _Patience = 3,
    val_fraction: _ValFraction = 0.2,
    max_per_class: MaxPerClassOpt = None,
    augment: _Augment = None,
    seed: _Seed = 0,
    group_pattern: GroupPatternOpt = None,
    num_workers: WorkersOpt = 0,
    out: _Out = None,
    resume: _Resume = False,
    pretrained: PretrainedOpt = True,
    offline: OfflineOpt = False,
    progress: ProgressOpt = True,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Fine-tune MODEL on DATA and print the validation accuracy, its 95% interval and the run's costs."""
    from advisor.api import finetune
    from advisor.finetune import FinetuneConfig
    from advisor.io import known_fields

    given = dict(locals()) | {"group_column": dataset.group_column}  # the `FinetuneConfig` fields build it
    cfg = FinetuneConfig(**known_fields(FinetuneConfig, given))
    out_dir = out if out is not None else default_out_dir(dataset.path, model, unfreeze, seed)
    bar = _ProgressBar() if progress else None
    try:
        result = finetune(
            dataset,
            model,
            cfg,
            out=out_dir,
            resume=resume,
            offline=offline or None,
            pretrained=pretrained,
            callback=bar,
        )
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
            bar = None
        stderr_console().print(
            f"[yellow]Interrupted.[/] The best checkpoint and the last completed epoch are in {safe(out_dir)}; "
            "rerun the same command with --resume to continue."
        )
        raise typer.Exit(130) from None
    finally:
        if bar is not None:
            bar.close()
    Output(fmt).result(result.to_dict(), _render)
