"""`advisor catalog list|show|search|build|community`: which pretrained models exist, how big and how good they are,
may I use them, how used they are."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from advisor.catalog.licenses import CLASS_MEANING
from advisor.cli._output import Output, OutputFormat, safe, stderr_console, stdout_console
from advisor.cli.options import (
    AdvisorCommand,
    FormatOpt,
    LicenseOpt,
    MaxParamsOpt,
    parse_count,
)

if TYPE_CHECKING:
    from advisor.catalog.schema import CatalogEntry

app = typer.Typer(
    name="catalog",
    help="Browse the catalog of pretrained models.",
    no_args_is_help=True,
    add_completion=False,
)


def _fmt_count(n: int | None) -> str:
    if n is None:
        return "—"
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def _fmt(v: Any, spec: str = "") -> str:
    return "—" if v is None else format(v, spec)


def _entries_table(entries: list, title: str, modality: str | None = None, community: bool = False) -> None:
    from rich import box
    from rich.table import Table

    from advisor.catalog.community import community_value, load_community
    from advisor.catalog.store import published_metric

    records = load_community() if community else {}

    console = stdout_console()
    # Narrower terminals drop the least needed columns, so that ids stay whole (they are copied into commands).
    level = 2 if console.width >= 110 else 1 if console.width >= 90 else 0
    table = Table(
        title=title,
        title_justify="left",
        header_style="bold",
        box=box.HEAVY_HEAD if level else box.SIMPLE_HEAD,
    )
    # Published-figure columns by what is shown: ImageNet top-1 for image classifiers, MTEB classification mean for
    # text and audio encoders, WER for speech recognisers, box mAP for detectors, mIoU for semantic segmenters.
    dense = {"object-detection": "det", "instance-segmentation": "det", "semantic-segmentation": "seg"}

    def shown_as(e: CatalogEntry) -> str:  # under --modality M, entries that take M among others are M rows
        return modality if modality is not None and modality in ("image", "text", "audio") else e.modality

    shown = {
        shown_as(e) for e in entries if shown_as(e) in ("image", "text", "audio") and e.task not in dense
    }
    shown |= {"asr" for e in entries if e.task == "speech-recognition"}
    shown |= {dense[e.task] for e in entries if e.task in dense}
    columns: list[tuple[str, dict[str, Any]]] = [
        ("id", dict(no_wrap=level > 0, overflow="fold")),
        ("params", dict(justify="right", no_wrap=True)),
        ("GMACs", dict(justify="right", no_wrap=True)),
        *([("input", dict(justify="right", no_wrap=True))] if level else []),
        *(
            [("IN-1k top-1 %" if level == 2 else "top-1 %", dict(justify="right", no_wrap=True))]
            if "image" in shown or not shown
            else []
        ),
        *([("MTEB cls %", dict(justify="right", no_wrap=True))] if shown & {"text", "audio"} else []),
        *([("WER %", dict(justify="right", no_wrap=True))] if "asr" in shown else []),
        *([("box mAP %", dict(justify="right", no_wrap=True))] if "det" in shown else []),
        *([("mIoU %", dict(justify="right", no_wrap=True))] if "seg" in shown else []),
        *(
            [("labels", dict(no_wrap=True, overflow="ellipsis", max_width=18))]
            if level and shown & {"det", "seg"}
            else []
        ),
        *([("downloads 30d", dict(justify="right", no_wrap=True))] if community else []),
        *([("likes", dict(justify="right", no_wrap=True))] if community else []),
        ("license", dict(no_wrap=True, overflow="ellipsis", max_width=16 if level == 2 else 12)),
        *([("probe", dict(justify="center", no_wrap=True))] if level else []),
        *([("task", dict(overflow="ellipsis", max_width=22))] if level == 2 else []),
    ]
    for name, kw in columns:
        table.add_column(name, **kw)
    for e in entries:
        size = (
            f"{e.input_size[1]}px"
            if e.input_size
            else f"{e.sample_rate_hz // 1000} kHz"
            if e.sample_rate_hz
            else f"{e.max_seq_len} tok"
            if e.max_seq_len
            else "—"
        )
        lic = e.license or "?"
        style = {"non-commercial": "red", "unknown": "yellow", "copyleft": "magenta"}.get(e.license_class, "")
        cells = {
            "id": safe(e.id),
            "params": _fmt_count(e.n_params),
            "GMACs": _fmt(e.gmacs, ".2f"),
            "input": size,
            "top-1 %": _fmt(e.imagenet_top1, ".2f"),
            "MTEB cls %": _fmt(published_metric(e, "mteb", modality), ".2f"),
            "WER %": _fmt(e.wer, ".2f"),
            "box mAP %": _fmt(e.box_map, ".1f"),
            "mIoU %": _fmt(e.miou, ".1f"),
            "labels": safe(e.label_set or "—"),
            "downloads 30d": _fmt(community_value(e, "downloads", records), ",") if community else "",
            "likes": _fmt(community_value(e, "likes", records), ",") if community else "",
            "license": f"[{style}]{safe(lic)}[/]" if style else safe(lic),
            "probe": "[green]✓[/]" if e.probeable_for(modality) else "[dim]—[/]",
            "task": safe(e.task),
        }
        cells["IN-1k top-1 %"] = cells["top-1 %"]
        table.add_row(*(cells[name] for name, _ in columns))
    console.print(table)


@app.command("list", cls=AdvisorCommand)
def list_cmd(
    modality: Annotated[
        str | None,
        typer.Option(
            help="image | text | audio | multimodal | video: entries that take that input (CLIP-like models are "
            "listed under text too; probe ✓ only where advisor probes it for that modality)"
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="e.g. image-classification, text-encoder, speech-encoder, object-detection (= detection)"
        ),
    ] = None,
    source: Annotated[str | None, typer.Option(help="timm | torchvision | hf | pkg | local")] = None,
    family: Annotated[
        str | None, typer.Option(help="architecture family, e.g. resnet, vit, bert, whisper")
    ] = None,
    max_params: MaxParamsOpt = None,
    max_gmacs: Annotated[
        float | None, typer.Option("--max-gmacs", help="upper bound on GMACs (multiply-accumulates)")
    ] = None,
    license: LicenseOpt = "any",
    probeable: Annotated[
        bool | None,
        typer.Option(
            "--probeable/--not-probeable", help="only entries advisor can (not) extract features from"
        ),
    ] = None,
    sort: Annotated[
        str,
        typer.Option(
            help="id | n_params | gmacs | top1 | mteb | wer | box_map | mask_map | miou | file_mb | year | "
            "downloads (Hub, last 30 days) | likes (from `catalog community`; unknown sorts last)"
        ),
    ] = "id",
    min_metric: Annotated[
        str | None,
        typer.Option(
            "--min",
            help="lower bound on a published figure, KEY=VALUE: top1 (ImageNet-1k %), mteb (MTEB classification "
            "mean %), wer (%), box_map / mask_map (COCO AP %), miou (%), e.g. --min mteb=60; entries without that figure are left out",
        ),
    ] = None,
    max_metric: Annotated[
        str | None,
        typer.Option("--max", help="upper bound on a published figure, KEY=VALUE, e.g. --max wer=8"),
    ] = None,
    desc: Annotated[
        bool | None,
        typer.Option(
            "--desc/--asc",
            help="sort direction (default: best first: highest top1/mteb/mAP/mIoU/year/downloads/likes, lowest "
            "wer/params/GMACs/size, ids A-Z)",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="show at most this many (default: 50 in a table, all in JSON)")
    ] = None,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """List catalog entries matching filters."""
    from advisor.api import catalog

    entries = catalog(
        modality=modality,
        task=task,
        source=source,
        family=family,
        max_params=parse_count(max_params, "--max-params"),
        max_gmacs=max_gmacs,
        license=license,
        probeable=probeable,
        sort=sort,
        descending=desc,
        min_metric=_bound(min_metric, "--min"),
        max_metric=_bound(max_metric, "--max"),
    )
    out = Output(fmt)
    _emit_entries(
        entries, out, limit, {}, "catalog entries", modality, community=sort in ("downloads", "likes")
    )
    if sort in ("downloads", "likes") and out.human:
        from advisor.catalog.community import load_community

        if not load_community():
            out.note(
                "no community figures recorded: every entry is unknown; `advisor catalog community` on a "
                "machine with network records them"
            )
    if license == "commercial" and out.human:
        from advisor.catalog.licenses import COMMERCIAL_NOTE

        out.note(COMMERCIAL_NOTE)


def _bound(text: str | None, option: str) -> tuple[str, float] | None:
    """`KEY=VALUE` of --min/--max as (key, number)."""
    if text is None:
        return None
    from advisor.errors import UsageError

    key, _, value = text.partition("=")
    try:
        return key.strip().lower(), float(value)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not KEY=VALUE", hint=f"e.g. {option} mteb=60") from None


def _emit_entries(
    entries: list[CatalogEntry],
    out: Output,
    limit: int | None,
    head: dict[str, Any],
    what: str,
    modality: str | None = None,
    community: bool = False,
) -> None:
    """The entries as ``{**head, total, count, entries}`` JSON (each with its ``community`` record or null), or a
    table of at most 50 unless --limit says (with downloads and likes columns when `community`)."""
    if limit is None and out.human:
        limit = 50
    shown = entries[:limit] if limit else entries
    listed: list[Any] = shown if out.human else _with_community(shown)
    payload = {**head, "total": len(entries), "count": len(shown), "entries": listed}

    def render(d: dict[str, Any]) -> None:
        if not d["entries"] and "query" in d:
            _no_match(d["query"])
            return
        more = (
            f" (showing {d['count']}; --limit N or --format json for more)" if d["count"] < d["total"] else ""
        )
        _entries_table(d["entries"], safe(f"{d['total']} {what}") + more, modality, community)

    out.result(payload, render)


@app.command("show", cls=AdvisorCommand)
def show_cmd(
    model_id: Annotated[str, typer.Argument(metavar="ID", help="catalog id, e.g. timm:resnet50.a1_in1k")],
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Show every field of one entry, with the source of each published figure."""
    from advisor.api import catalog_entry

    out = Output(fmt)
    entry = catalog_entry(model_id)
    out.result(entry if out.human else _with_community([entry])[0], _show_human)


def _with_community(entries: list[CatalogEntry]) -> list[dict[str, Any]]:
    """Entries as their JSON dicts plus ``community``: the Hub record with its provenance, or null (unknown)."""
    from advisor.catalog.community import community_of, load_community

    records = load_community()
    out = []
    for e in entries:
        rec = community_of(e, records)
        out.append({**e.to_dict(), "community": rec.to_dict() if rec is not None else None})
    return out


def _community_rows(e: CatalogEntry) -> list[tuple[str, str]]:
    """`catalog show` rows for the Hub community figures: dated with their source, or unknown (never 0)."""
    from advisor.catalog.community import community_of, hub_repo_of

    rec = community_of(e)
    if rec is None:
        why = (
            "not on the Hugging Face Hub"
            if hub_repo_of(e) is None
            else "no community record; `advisor catalog community` on a machine with network records it"
        )
        return [("downloads / likes", f"unknown  [dim]{safe(why)}[/]")]
    dim = f"  [dim]{safe(rec.provenance)}[/]"

    def known(v: Any) -> str:
        return "unknown" if v is None else f"{v:,}" if isinstance(v, int) else safe(v)

    return [
        ("downloads (30 days)", known(rec.downloads) + dim),
        ("likes", known(rec.likes) + dim),
        ("last modified", known(rec.last_modified) + dim),
    ]


def _dense_rows(e: CatalogEntry) -> list[tuple[str, str]]:
    """`catalog show` rows for a detector's or segmenter's label set, working size and post-processing."""
    from advisor.catalog.schema import DENSE_TASKS

    if e.task not in DENSE_TASKS and e.label_set is None and e.working_size is None and e.postprocess is None:
        return []
    unknown = "not recorded"
    labels = e.label_set or unknown
    if e.n_labels is not None:
        labels += f"  ({e.n_labels} classes)"
    return [
        ("label set", safe(labels)),
        ("working size", safe(e.working_size or unknown)),
        ("post-processing", safe(e.postprocess or unknown)),
        ("dense fields from", f"[dim]{safe(e.dense_source or 'no source recorded')}[/]"),
    ]


def _show_human(e: CatalogEntry) -> None:
    from rich.table import Table

    t = Table(title=safe(e.id), title_justify="left", show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    rows = [
        ("source", f"{safe(e.source)}  ({safe(e.source_id)})"),
        ("family / arch", f"{safe(e.family)} / {safe(e.architecture)}"),
        ("modality / task", f"{safe(e.modality)} / {safe(e.task)}"),
        *([("takes", safe(", ".join(e.modalities)))] if e.modalities else []),
        ("params", f"{_fmt_count(e.n_params)}  [dim]{safe(e.n_params_source or '')}[/]"),
        ("GMACs (multiply-acc.)", f"{_fmt(e.gmacs, '.3f')}  [dim]{safe(e.gmacs_source or '')}[/]"),
        ("input size", safe(e.input_size) if e.input_size else "—"),
        ("max seq len", _fmt(e.max_seq_len)),
        ("sample rate Hz", _fmt(e.sample_rate_hz)),
        ("feature dim", _fmt(e.feature_dim)),
        ("head classes", _fmt(e.num_classes)),
        *_dense_rows(e),
        ("pretraining data", safe(e.pretrain_data or "—")),
        (
            "license",
            f"{safe(e.license or '?')} ({safe(e.license_class)})  [dim]{safe(e.license_raw or '')}[/]",
        ),
        ("license class", safe(CLASS_MEANING.get(e.license_class, e.license_class))),
        ("weights file MB", f"{_fmt(e.file_mb, '.1f')}  [dim]{safe(e.file_mb_source or '')}[/]"),
        ("paper", f"{safe(e.paper or '—')} ({safe(e.year or '?')})"),
        (
            "probeable",
            ("yes" if e.probeable else "no") + (f" — {safe(e.probe_note)}" if e.probe_note else ""),
        ),
        ("tags", safe(", ".join(e.tags) or "—")),
        *([("revision", safe(e.revision))] if e.revision else []),
        *([("release date", safe(e.release_date))] if e.release_date else []),
        *(
            [("languages", safe(", ".join(e.languages[:12]) + (" …" if len(e.languages) > 12 else "")))]
            if e.languages
            else []
        ),
        *(
            [("loader (source)", safe(", ".join(f"{k}: {v}" for k, v in e.loader.items())))]
            if e.loader
            else []
        ),
        *([("sources merged", safe(", ".join(e.provenance)))] if e.provenance else []),
        *_community_rows(e),
    ]
    for k, v in rows:
        t.add_row(k, v)
    con = stdout_console()
    con.print(t)
    if e.metrics:
        mt = Table(title="published metrics", title_justify="left", header_style="bold")
        for col in ("dataset", "metric", "value", "res px", "split / protocol", "source"):
            mt.add_column(col, overflow="fold")
        for m in e.metrics:
            how = " / ".join(x for x in (m.split, m.protocol) if x) or "—"
            mt.add_row(
                safe(m.dataset), safe(m.name), f"{m.value:.3f}", _fmt(m.resolution), safe(how), safe(m.source)
            )
        con.print(mt)


@app.command("search", cls=AdvisorCommand)
def search_cmd(
    text: Annotated[
        list[str],
        typer.Argument(help="words that must all appear (id, family, task, pretraining data, tags)"),
    ],
    limit: Annotated[int | None, typer.Option(help="show at most this many")] = None,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Find entries by words, e.g. `advisor catalog search convnext in22k`."""
    from advisor.api import catalog

    query = " ".join(text)
    _emit_entries(catalog(query), Output(fmt), limit, {"query": query}, f"matches for {query!r}")


def _no_match(query: str) -> None:
    from advisor.catalog.store import load_catalog

    close = load_catalog().suggest(query.replace(" ", "_"))
    stdout_console().print(
        "No entries match." + (f" Close ids: {safe(', '.join(close))}" if close else ""), highlight=False
    )


@app.command("build", cls=AdvisorCommand)
def build_cmd(
    sources: Annotated[
        Path | None,
        typer.Option(
            "--sources",
            help="folder with the upstream tables (timm-pretrained-cfgs.csv, results-*.csv, benchmark-infer-*.csv, "
            "torchvision-weights.csv and their SOURCE.md files), searched recursively, e.g. ../shared/data",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="output JSONL (default: the catalog/catalog.jsonl of this checkout)")
    ] = None,
    count_params: Annotated[
        bool,
        typer.Option(
            "--count-params/--no-count-params",
            help="count parameters by instantiating each architecture on the meta device",
        ),
    ] = True,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Regenerate the catalog from the tables in --sources DIR and catalog/curated.json (minutes: it builds every architecture)."""
    from advisor.api import build_catalog

    summary = _with_bar(
        "counting timm parameters",
        lambda progress: build_catalog(sources, out=out, count_params=count_params, progress=progress),
    )
    Output(fmt).result(summary, _render_build)


def _with_bar(label: str, run: Callable[[Callable[[int, int], None]], dict[str, Any]]) -> dict[str, Any]:
    """`run(progress)` under a transient progress bar on stderr titled `label`: ``progress(done, total)`` moves it."""
    from rich.progress import Progress

    with Progress(console=stderr_console(), transient=True) as bar:
        task = bar.add_task(label, total=None)
        return run(lambda done, total: bar.update(task, completed=done, total=total))


def _render_build(s: dict[str, Any]) -> None:
    by_source = ", ".join(f"{k}: {v}" for k, v in s["by_source"].items())
    stdout_console().print(
        f"Wrote {s['entries']} entries to {safe(s['path'])} ({by_source}), "
        f"{s['published_bench_rows']} published benchmark rows to {safe(s['published_bench'])}."
    )


@app.command("community", cls=AdvisorCommand)
def community_cmd(
    ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="[ID]...", help="catalog ids to ask about (default: every entry on the Hub)"),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source", help="hf | timm: without IDs, ask about these sources' entries (default both)"
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="the community file (default: catalog/community.json of this checkout)"),
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="ask again about repos the file already has")
    ] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="ask about at most this many repos now; a rerun does the rest")
    ] = None,
    delay: Annotated[float, typer.Option(min=0.0, help="seconds between requests")] = 0.05,
    timeout: Annotated[float, typer.Option(min=0.1, help="seconds per request")] = 10.0,
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Record Hub downloads (last 30 days), likes and last modification per Hugging Face repo (needs network).

    The figures go to a separate derived file, dated and with their source; `catalog show` and
    `catalog list --sort downloads|likes` read it. Offline the command stops at once and the fields stay unknown.
    """
    from advisor.api import build_catalog_community
    from advisor.catalog.community import require_online

    require_online()  # offline: one error line at once, before any progress display
    summary = _with_bar(
        "asking the Hugging Face Hub",
        lambda progress: build_catalog_community(
            ids,
            sources=tuple(source) if source else ("hf", "timm"),
            out=out,
            refresh=refresh,
            limit=limit,
            delay=delay,
            timeout=timeout,
            progress=progress,
        ),
    )
    Output(fmt).result(summary, _render_community)


def _render_community(s: dict[str, Any]) -> None:
    errors = ", ".join(f"{k} {v}" for k, v in s["errors"].items())
    con = stdout_console()
    asked = s["fetched"] + sum(s["errors"].values())
    left = f", {s['left']} left for a rerun" if s["left"] else ""
    con.print(
        f"Asked {asked} of {s['requested']} Hub repos ({s['already']} already recorded{left}); "
        f"{s['recorded']} repos now in {safe(s['path'])} (downloads = {s['downloads_window']}, "
        f"{safe(s['client'])}, {safe(s['endpoint'])}).",
        highlight=False,
    )
    if errors:
        con.print(f"[yellow]Not recorded:[/] {safe(errors)}; a rerun asks about them again.", highlight=False)
        for f in s["failed"][:5]:
            con.print(f"  {safe(f['hub_repo'])}: {safe(f['error'])} — {safe(f['message'])}", highlight=False)
