"""`advisor bench MODEL...`: latency, throughput, memory, cold start and GMACs of models on this machine."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from advisor.cli._output import Output, OutputFormat, print_each, safe, stdout_console
from advisor.cli.options import (
    AdvisorCommand,
    DeviceOpt,
    FormatOpt,
    PretrainedOpt,
    ThreadsOpt,
    parse_int_list,
)

app = typer.Typer()


@app.command(
    "bench",
    cls=AdvisorCommand,
    help="Measure latency, throughput, memory and GMACs of models on this machine.",
)
def bench(
    models: Annotated[
        list[str], typer.Argument(help="Model ids, e.g. timm:resnet18 torchvision:mobilenet_v3_small.")
    ],
    device: DeviceOpt = "auto",
    batch_sizes: Annotated[
        str, typer.Option("--batch-sizes", "-b", help="Comma-separated batch sizes.")
    ] = "1,8",
    precision: Annotated[
        str, typer.Option(help="Comma-separated: fp32, fp16, bf16 (cast), amp_fp16, amp_bf16 (autocast).")
    ] = "fp32",
    channels_last: Annotated[bool, typer.Option("--channels-last", help="NHWC memory format.")] = False,
    compile: Annotated[
        bool, typer.Option("--compile", help="torch.compile the model (time reported).")
    ] = False,
    compile_mode: Annotated[str, typer.Option(help="torch.compile mode.")] = "default",
    threads: ThreadsOpt = None,
    tf32: Annotated[
        bool, typer.Option("--tf32", help="Allow TF32 on CUDA for fp32 (off unless given).")
    ] = False,
    input_size: Annotated[
        int | None, typer.Option(help="Image side in pixels (default: the model's).")
    ] = None,
    seq_len: Annotated[int | None, typer.Option(help="Text length in tokens (default: the model's).")] = None,
    clip_seconds: Annotated[float | None, typer.Option(help="Audio clip length in seconds.")] = None,
    min_time: Annotated[float, typer.Option(help="Minimum seconds of timed calls per batch size.")] = 1.0,
    max_time: Annotated[float, typer.Option(help="Stop timing a batch size after this many seconds.")] = 30.0,
    min_repeats: Annotated[int, typer.Option(help="Minimum timed calls per batch size.")] = 10,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up calls.")] = 3,
    pretrained: PretrainedOpt = False,  # timing does not need the published weights
    count_flops: Annotated[
        bool, typer.Option("--flops/--no-flops", help="Count GMACs and compare with published.")
    ] = True,
    find_max_batch: Annotated[
        bool, typer.Option("--find-max-batch", help="Also search the largest batch that fits in memory.")
    ] = False,
    reuse: Annotated[
        bool,
        typer.Option("--reuse", help="Return a stored result for identical model, settings and hardware."),
    ] = False,
    store: Annotated[
        bool, typer.Option("--store/--no-store", help="Append results to the bench store.")
    ] = True,
    runtime: Annotated[
        str,
        typer.Option(
            "--runtime",
            help="eager | auto | channels-last | onnxruntime | compile, or all (each in turn, compared; every "
            "runtime's outputs are checked against eager first).",
        ),
    ] = "eager",
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Benchmark each MODEL with the same settings; figures carry the settings and hardware that made them."""
    from advisor.api import bench as run_bench
    from advisor.bench.runner import BenchConfig
    from advisor.io import known_fields
    from advisor.paths import cache_dir

    given = dict(locals())  # the `BenchConfig` fields among the parameters build the config
    given |= {
        "batch_sizes": parse_int_list(batch_sizes, "--batch-sizes"),
        "precision": tuple(p for p in precision.replace(" ", "").split(",") if p),
    }
    from advisor.runtime import RUNTIMES, check_runtime

    runtimes = list(RUNTIMES) if runtime == "all" else [check_runtime(runtime)]
    results = []
    for rt in runtimes:
        given["runtime"] = rt
        config = BenchConfig(**known_fields(BenchConfig, given))
        results += [r.to_dict() for r in run_bench(models, config, store=store, reuse=reuse)]
    data: dict[str, Any] = {"results": results, "store": str(cache_dir() / "bench.sqlite") if store else None}
    if len(runtimes) > 1:
        data["runtimes"] = runtime_rows(results)
    Output(fmt).result(data, _render)


def runtime_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, runtime asked, batch): what ran, its latency, and how far it was from eager."""
    rows = []
    for r in results:
        asked = (r.get("config") or {}).get("runtime", "eager")
        ch = r.get("runtime_choice") or {}
        ran = ch.get("runtime", "eager") if ch else "eager"
        diff = (ch.get("max_abs_diff") or {}).get(ran)
        why = (ch.get("reasons") or {}).get(asked)
        for rec in r.get("records") or []:
            lat = rec.get("latency") or {}
            rows.append(
                {
                    "model_id": r["model_id"],
                    "runtime": asked,
                    "ran": ran,
                    "batch_size": rec.get("batch_size") or rec.get("requested_batch_size"),
                    "p50_ms": lat.get("p50_ms"),
                    "p90_ms": lat.get("p90_ms"),
                    "p99_ms": lat.get("p99_ms"),
                    "max_abs_diff_vs_eager": diff,
                    "note": why or rec.get("error"),
                }
            )
    return rows


def _f(v: Any, spec: str = ".2f") -> str:
    return "—" if v is None else format(v, spec)


def _render(data: dict[str, Any]) -> None:
    console = stdout_console()
    for r in data["results"]:
        cached = " [dim](stored result, not re-measured)[/]" if r.get("from_cache") else ""
        console.print(
            f"[bold]{safe(r['model_id'])}[/] on {safe(r['device'])} — {safe(r['device_class'])}{cached}",
            highlight=False,
        )
        if r.get("weights_note"):
            console.print(f"  [yellow]{safe(r['weights_note'])}[/]", highlight=False)
        console.print(_records_table(r["records"]))
        _print_costs(console, r)
        if r.get("published_comparison"):
            console.print(_published_table(r["published_comparison"]))
        print_each(console, "  [yellow]warning:[/] ", r.get("warnings") or [])
    if data.get("runtimes"):
        console.print(_runtimes_table(data["runtimes"]))
    if data.get("store"):
        console.print(f"[dim]stored in {safe(data['store'])}[/]", highlight=False)


def _runtimes_table(rows: list[dict[str, Any]]) -> Any:
    """The runtimes side by side: latency percentiles and the largest output difference from eager."""
    from rich.table import Table

    t = Table(title="latency per runtime (outputs checked against eager first)", header_style="bold")
    for col in ("model", "runtime", "ran", "batch", "p50 ms", "p90 ms", "p99 ms", "max |Δ| vs eager", "note"):
        t.add_column(col, justify="right" if "ms" in col or col in ("batch", "max |Δ| vs eager") else "left")
    for row in rows:
        d = row["max_abs_diff_vs_eager"]
        t.add_row(
            safe(row["model_id"]),
            safe(row["runtime"]),
            safe(row["ran"])
            if row["ran"] == row["runtime"] or row["runtime"] == "auto"
            else f"[red]{safe(row['ran'])}[/]",
            str(row["batch_size"]),
            _f(row["p50_ms"]),
            _f(row["p90_ms"]),
            _f(row["p99_ms"]),
            "—" if d is None else f"{d:.1e}",
            f"[yellow]{safe(row['note'] or '')}[/]",
        )
    return t


_RECORD_COLUMNS = (
    "precision", "batch", "p50 ms", "p90 ms", "p99 ms", "IQR ms", "items/s", "peak mem MiB", "n", "notes",
)  # fmt: skip


def _records_table(records: list[dict[str, Any]]) -> Any:
    """One row per (precision, batch size): latency percentiles, throughput, peak memory, notes."""
    from rich.table import Table

    t = Table(header_style="bold")
    for col in _RECORD_COLUMNS:
        t.add_column(col, justify="left" if col in ("precision", "notes") else "right")
    for rec in records:
        lat = rec.get("latency") or {}
        mem = rec.get("memory") or {}
        peak = mem.get("gpu_peak_allocated_mb", mem.get("cpu_rss_delta_mb"))
        if peak is None:
            peak = mem.get("cpu_rss_delta_mb")
        label = (
            rec["precision"]
            + (" +CL" if rec["channels_last"] else "")
            + (f" +compile({rec['compile_mode']})" if rec.get("compile_mode") else "")
        )
        bs = str(rec["batch_size"] or rec["requested_batch_size"])
        if rec["batch_size"] and rec["batch_size"] != rec["requested_batch_size"]:
            bs = f"{rec['batch_size']} (asked {rec['requested_batch_size']})"
        notes = rec.get("error") or "; ".join(rec.get("warnings") or [])
        t.add_row(
            safe(label),
            safe(bs),
            _f(lat.get("p50_ms")),
            _f(lat.get("p90_ms")),
            _f(lat.get("p99_ms")),
            _f(lat.get("iqr_ms")),
            _f(rec.get("throughput_items_per_s"), ".1f"),
            _f(peak, ".1f"),
            str(lat.get("n", "—")),
            f"[{'red' if rec['status'] != 'ok' else 'yellow'}]{safe(notes)}[/]",
        )
    return t


def _print_costs(console: Any, r: dict[str, Any]) -> None:
    """Cold start, parameters and weight memory, measured vs published GMACs."""
    cs = r.get("cold_start") or {}
    console.print(
        f"  cold start: load {_f(cs.get('load_s'))} s + first call {_f(cs.get('first_call_s'), '.3f')} s"
        + (f"; compile (first call) {cs['compile_s']}" if cs.get("compile_s") else "")
        + f"; threads {r['records'][0]['threads'] if r['records'] else '—'}"
    )
    if r.get("n_params") is not None:
        wm = ", ".join(f"{k} {v:.1f} MiB" for k, v in (r.get("weights_memory_mb") or {}).items())
        console.print(f"  params: {r['n_params'] / 1e6:.2f} M; weights: {wm}")
    g = r.get("gmacs")
    if g and g.get("gmacs") is not None:
        console.print(
            f"  measured GMACs/sample (multiply-accumulates): {g['gmacs']:.4f} (fvcore+attention), "
            f"{_f(g.get('gmacs_torch'), '.4f')} (torch FlopCounterMode/2, {g.get('torch_method')})"
        )
        if g.get("significant_uncounted"):
            console.print(f"  [red]uncounted operators: {safe(', '.join(g['significant_uncounted']))}[/]")
    for p in r.get("gmacs_published") or []:
        ok = (
            "[green]within 1%[/]"
            if p.get("within_1pct")
            else "[green]equal after rounding[/]"
            if p.get("matches_published")
            else "[red]off by more than 1%[/]"
        )
        console.print(
            f"  published GMACs {p['gmacs']} ({safe(p['source'])}, {safe(p['column'])}) vs measured "
            f"{_f(p.get('measured'), '.4f')} ({safe(p['compare_with'])}): {ok}"
        )


_PUBLISHED_COLUMNS = (
    "published file", "img px", "pub. batch", "pub. items/s", "our batch", "our precision", "our items/s",
)  # fmt: skip


def _published_table(comparison: list[dict[str, Any]]) -> Any:
    """Published throughput (timm benchmark CSV, another machine) next to the one measured here."""
    from rich.table import Table

    pt = Table(
        title="throughput: published (timm benchmark CSV, other machine) vs measured (this machine)",
        title_justify="left",
        header_style="bold",
    )
    for col in _PUBLISHED_COLUMNS:
        pt.add_column(col, justify="left" if col == "published file" else "right")
    for c in comparison:
        p, m = c["published"], c["measured"]
        pt.add_row(
            safe(p["file"]),
            str(p["img_size"]),
            str(p["batch_size"]),
            _f(p["samples_per_sec"], ".1f"),
            str(m["batch_size"]),
            safe(m["precision"]),
            _f(m["throughput_items_per_s"], ".1f"),
        )
    return pt
