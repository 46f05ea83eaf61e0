"""Rich rendering of the dense (detection / segmentation) dataset profile of `advisor data profile`."""

from __future__ import annotations

from typing import Any

from advisor.cli._output import safe, stdout_console
from advisor.cli.data import MAX_CLASS_ROWS, _kv_table, _rel, _stat_row

_BOX_TASKS = ("detection", "instance-segmentation")  # = advisor.dense.types.BOX_TASKS (not imported: numpy)


def _dataset_rows(p: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("path", p["root"]), ("task", p["task"]), ("format", p["format"]), ("images", p["images"]),
        ("classes", p["classes"]),
    ]  # fmt: skip
    if p["task"] in _BOX_TASKS:
        rows += [
            ("objects", p["objects"]),
            ("crowd boxes", p["crowd_boxes"]),
            ("size split (COCO)", ", ".join(f"{k} {v}" for k, v in p["size_split"].items())),
            ("images without objects", p["images_without_objects"]),
            ("imbalance (max/min)", None if p["imbalance_ratio"] is None else f"{p['imbalance_ratio']:g}x"),
        ]
    else:
        rows += [
            ("ignore index", p["ignore_index"]),
            ("mask values", ", ".join(f"{k} → {v}" for k, v in p["mask_values"].items()) or "class indices"),
            ("masks sampled", p["masks_sampled"]),
            ("ignored pixels %", f"{100 * p['ignored_pixel_share']:.2f}"),
        ]
    rows += [
        ("splits", ", ".join(f"{k} {v}" for k, v in p["splits"].items()) or None),
        ("skipped", p["n_skipped"]),
        ("fingerprint", p["fingerprint"]),
    ]
    return rows


def _class_table(p: dict[str, Any]) -> Any:
    from rich.table import Table

    det = p["task"] in _BOX_TASKS
    t = Table(title="Classes", title_justify="left", header_style="bold")
    cols = ["class", "objects", "share %", "images", "small", "medium", "large"] if det else [
        "class", "pixel share %", "images (sampled)",
    ]  # fmt: skip
    for i, c in enumerate(cols):
        t.add_column(c, justify="left" if i == 0 else "right")
    names = p["class_names"]
    if len(names) > MAX_CLASS_ROWS:
        t.caption = f"{len(names) - MAX_CLASS_ROWS} classes not shown; --format json lists all"
        names = names[:MAX_CLASS_ROWS]
    total = max(p.get("objects", 0), 1)
    for c in names:
        if det:
            n, split = p["objects_per_class"][c], p["size_split_per_class"][c]
            cells = [str(n), f"{100 * n / total:.1f}", str(p["images_per_class"][c])]
            cells += [str(split[k]) for k in ("small", "medium", "large")]
            t.add_row(safe(c), *cells, style="yellow" if n == 0 else "")
        else:
            share, n = p["pixel_share"][c], p["images_per_class"][c]
            t.add_row(safe(c), f"{100 * share:.2f}", str(n), style="yellow" if n == 0 else "")
    return t


def _sizes_table(p: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(title="Sizes", title_justify="left", header_style="bold")
    for col in ("quantity", "min", "mean", "median", "p95", "max"):
        t.add_column(col, justify="left" if col == "quantity" else "right")
    t.add_row(*_stat_row("image width (px)", p["image_sizes"]["width_px"]))
    t.add_row(*_stat_row("image height (px)", p["image_sizes"]["height_px"]))
    if p["task"] in _BOX_TASKS:
        t.add_row(*_stat_row("objects per image", p["objects_per_image"]))
        t.add_row(*_stat_row("box width (px)", p["box_width_px"]))
        t.add_row(*_stat_row("box height (px)", p["box_height_px"]))
    return t


def render_dense_profile(p: dict[str, Any]) -> None:
    """Print the dense profile `p` (`advisor.dense.profile.profile_dense`): tables, then one line per warning."""
    from rich.table import Table

    con = stdout_console()
    con.print(_kv_table("Dataset", _dataset_rows(p)))
    if p["class_names"]:
        con.print(_class_table(p))
    con.print(_sizes_table(p))
    if p["skipped"]:
        t = Table(title=f"Skipped ({p['n_skipped']})", title_justify="left", header_style="bold")
        t.add_column("path", overflow="fold")
        t.add_column("reason", overflow="fold")
        for s in p["skipped"][:20]:
            t.add_row(safe(_rel(s["path"], p["root"])), safe(s["reason"]))
        if p["n_skipped"] > 20:
            t.caption = f"{p['n_skipped'] - 20} more; use --format json for the full list (first 100)"
        con.print(t)
    for w in p["warnings"]:
        ex = f" (e.g. {', '.join(w['examples'][:3])})" if w["examples"] else ""
        con.print(
            f"[yellow]warning:[/] {safe(w['code'])} ×{w['count']}: {safe(w['message'] + ex)}", highlight=False
        )
