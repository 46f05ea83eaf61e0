"""`advisor features`: extract (cached, resumable) features of one model on a dataset and write them to a file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from advisor.cli._output import Output, OutputFormat, safe, stdout_console
from advisor.cli.options import (
    AdvisorCommand,
    BatchSizeOpt,
    DataOpt,
    DeviceOpt,
    FormatOpt,
    MaxPerClassOpt,
    MaxSamplesOpt,
    ModelOpt,
    OfflineOpt,
    PretrainedOpt,
    ProgressOpt,
    RuntimeOpt,
    SeedOpt,
    WorkersOpt,
    dataset_options,
)

if TYPE_CHECKING:
    from advisor.data.spec import DatasetSpec


app = typer.Typer()


@app.command("features", cls=AdvisorCommand)
@dataset_options(DataOpt, "modality", "text_column", "label_column", "split", "split_column")
def features_cmd(
    dataset: DatasetSpec,
    model: ModelOpt,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write features here (.npz or .safetensors).")
    ] = None,
    device: DeviceOpt = "auto",
    batch_size: BatchSizeOpt = 32,
    runtime: RuntimeOpt = "eager",
    workers: WorkersOpt = 0,
    max_per_class: MaxPerClassOpt = None,
    max_samples: MaxSamplesOpt = None,
    seed: SeedOpt = 0,
    overwrite_strategy: Annotated[
        str,
        typer.Option(
            "--overwrite-strategy",
            help="only-missing (reuse/resume cache) | always (recompute) | never (error if cached) | "
            "only-cache (error if not cached).",
        ),
    ] = "only-missing",
    precision: Annotated[
        str, typer.Option("--precision", help="auto (bf16/fp16 on GPU) | fp32 | bf16 | fp16.")
    ] = "auto",
    offline: OfflineOpt = False,
    pretrained: PretrainedOpt = True,
    trust_remote_code: Annotated[
        bool, typer.Option("--trust-remote-code", help="Allow Hugging Face repos that run their own code.")
    ] = False,
    progress: ProgressOpt = True,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Extract features (and source-head logits) of MODEL on DATA; a rerun is served from the cache."""
    options = dict(locals())  # the parameters are `advisor.api.features`'s, but for the three converted here
    from advisor.api import features

    del options["fmt"]
    options["offline"] = True if offline else None
    summary = features(options.pop("dataset"), **options)
    sink = Output(fmt)
    sink.result(summary, _render)
    if summary.get("skipped"):
        top = ", ".join(f"{n} {c}" for c, n in list(summary["skipped_by_code"].items())[:4])
        sink.warn(
            f"{summary['skipped']} item(s) skipped ({top}); paths and reasons: skipped_items in --format json"
        )


def _render(s: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"features of {safe(s['model_id'])}", show_header=True)
    t.add_column("field")
    t.add_column("value")
    rows = [
        ("samples (n)", s["n"]),
        ("feature dim", s["dim"]),
        ("logits", "x".join(map(str, s["logits_shape"])) if s.get("logits_shape") else "-"),
        ("classes", s["classes"]),
        ("skipped (items)", s["skipped"]),
        ("cache hit", "yes" if s["cache_hit"] else "no"),
        ("resumed chunks", s.get("resumed_chunks") or 0),
        ("time (s)", f"{s['seconds']:.2f}" if s.get("seconds") is not None else "-"),
        ("throughput (items/s)", f"{s['items_per_s']:.1f}" if s.get("items_per_s") else "-"),
        ("device / precision", f"{s.get('device')} / {s.get('precision')}"),
        ("written to", s.get("out") or "-"),
        ("cache key", s.get("cache_key") or "- (not cached)"),
    ]
    for k, v in rows:
        t.add_row(k, safe(v))
    stdout_console().print(t)
