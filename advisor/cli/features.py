"""`advisor features`: extract (cached, resumable) features of one model on a dataset and write them to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from advisor.cli._output import DebugOption, FormatOption, emit, handle_errors, safe, stdout_console


def register(app: typer.Typer) -> None:
    """Add the `features` command to the root app."""
    app.command("features")(features_cmd)


def features_cmd(
    data: Annotated[
        Path, typer.Option("--data", "-d", help="Dataset folder or table (see `advisor data profile`).")
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Model id: timm:..., torchvision:..., hf:org/name, pkg:name, local:/path/file.",
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write features here (.npz or .safetensors).")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | mps.")] = "auto",
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", help="Samples per forward pass.", min=1)
    ] = 32,
    num_workers: Annotated[
        int,
        typer.Option(
            "--num-workers", help="DataLoader workers decoding and preprocessing (0: main process).", min=0
        ),
    ] = 0,
    max_per_class: Annotated[
        int | None, typer.Option("--max-per-class", help="Cap per class (stratified).")
    ] = None,
    max_samples: Annotated[
        int | None, typer.Option("--max-samples", help="Cap on the total (stratified).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the stratified subsample.")] = 0,
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
    offline: Annotated[
        bool, typer.Option("--offline", help="Never touch the network; use cached weights only.")
    ] = False,
    random_init: Annotated[bool, typer.Option("--random-init", help="Random weights (no download).")] = False,
    trust_remote_code: Annotated[
        bool, typer.Option("--trust-remote-code", help="Allow Hugging Face repos that run their own code.")
    ] = False,
    modality: Annotated[str | None, typer.Option("--modality", help="Force image, text or audio.")] = None,
    text_column: Annotated[str | None, typer.Option("--text-column", help="Text column of a table.")] = None,
    label_column: Annotated[
        str | None, typer.Option("--label-column", help="Label column of a table.")
    ] = None,
    split: Annotated[str | None, typer.Option("--split", help="Only this split: train, val or test.")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Hide the progress bar.")] = False,
    fmt: FormatOption = "human",
    debug: DebugOption = False,
) -> None:
    """Extract features (and source-head logits) of MODEL on DATA; a rerun is served from the cache."""
    with handle_errors(debug):
        from advisor.features import run_features_command

        summary = run_features_command(
            data=data,
            model=model,
            out=out,
            device=device,
            batch_size=batch_size,
            num_workers=num_workers,
            max_per_class=max_per_class,
            max_samples=max_samples,
            seed=seed,
            overwrite_strategy=overwrite_strategy,
            precision=precision,
            offline=True if offline else None,
            pretrained=not random_init,
            trust_remote_code=trust_remote_code,
            modality=modality,
            text_column=text_column,
            label_column=label_column,
            split=split,
            progress=not no_progress,
        )
        emit(summary, fmt, _render)


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
        ("throughput (items/s)", s.get("items_per_s") or "-"),
        ("device / precision", f"{s.get('device')} / {s.get('precision')}"),
        ("written to", s.get("out") or "-"),
        ("cache key", s.get("cache_key")),
    ]
    for k, v in rows:
        t.add_row(k, safe(v))
    stdout_console().print(t)
