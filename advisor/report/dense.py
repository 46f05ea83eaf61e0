"""Renderers of a `DenseResults` (detection / segmentation): markdown, CSV, JSON and a single-file HTML report.

Pure functions of the stored results. Every user-supplied string (paths, class names, model ids) is escaped for
the output it goes to (`md_text`, `html.escape`, `csv_cell`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from html import escape
from pathlib import Path
from typing import Any

from advisor.dense.results import DenseCandidate, DenseResults, Role
from advisor.dense.types import BOX_TASKS, TASK_METRIC
from advisor.report.boxes import examples_html
from advisor.report.render import _CSS, _html_table, _md_table, csv_cell, md_code, md_text
from advisor.report.svg import Point, hbars, scatter

DENSE_FILES = {"json": "results.json", "md": "report.md", "csv": "results.csv", "html": "report.html"}


def _f(v: Any, fmt: str = "{:.3f}") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return fmt.format(v)


def _ci(p: dict[str, Any] | None) -> str:
    ci = (p or {}).get("ci")
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-"


def _lat(c: DenseCandidate) -> str:
    lat = c.latency or {}
    if lat.get("p50_ms") is None:
        return "-"
    flag = " (unreliable)" if lat.get("unreliable") else ""
    return f"{lat['p50_ms']:.1f}{flag}"


# what the ROI probe measured (box tasks; `advisor.dense.roi_probe`), for the rung list of the reports
ROI_RUNG = (
    "a second frozen-feature proxy beside the crop probe (not used for the ranking): ground-truth boxes, jittered "
    "proposals (IoU at least 0.5) and background proposals (IoU under 0.3), each ROI-aligned on the backbone's "
    "pyramid level by the FPN size rule; TLogME-style value = LogME of the classes + background plus LogME of "
    "the Faster R-CNN box deltas (nats per ROI, higher is better), with the out-of-fold linear-probe accuracy "
    "and the out-of-fold ridge R² of the box deltas beside it (images kept whole in every fold); a proxy, not "
    "the task metric"
)


def _roi(c: DenseCandidate) -> dict[str, Any]:
    return (c.proxy or {}).get("roi_probe") or {}


def has_roi(r: DenseResults) -> bool:
    """True when some row carries an ROI-probe record (box tasks)."""
    return any(_roi(c) for c in r.candidates)


def _roi_counts(r: DenseResults) -> str:
    """``; this run: N ROIs (g boxes, j jittered, b background) from M images`` from the first ROI record."""
    p = next((_roi(c) for c in r.candidates if _roi(c).get("n_items")), None)
    if p is None:
        return ""
    k = (p.get("probe") or {}).get("rois") or {}
    parts = (
        f" ({k.get('gt', '?')} boxes, {k.get('jitter', '?')} jittered, {k.get('background', '?')} background)"
    )
    return f"; this run: {p['n_items']} ROIs{parts if k else ''} from {p.get('n_groups', '?')} images"


def _roi_cells(c: DenseCandidate) -> list[str]:
    p = _roi(c)
    if p.get("error"):
        return ["failed", "-", "-"]
    return [_f(p.get("value")), _f(p.get("accuracy")), _f(p.get("box_r2"))]


def proxy_rows(r: DenseResults) -> tuple[list[str], list[list[str]]]:
    """The proxy rung: backbones, twins and floors, best first (box tasks: the ROI probe's figures beside)."""
    what = "crop-probe acc" if r.task in BOX_TASKS else "pixel-probe mIoU"
    header = ["#", "model", "role", what, "95% CI", "tied with #1", "items", "p50 ms"]
    roi = has_roi(r)
    if roi:
        header[7:7] = ["ROI class+box LogME", "ROI acc", "ROI box R²"]
    rows = []
    for c in r.proxy_ranked:
        p = c.proxy or {}
        row = [
            str(c.rank or ""),
            c.model_id,
            c.role,
            _f(c.proxy_value),
            _ci(p),
            "yes" if c.tied_with_best else "",
            str(p.get("n_items", "-")),
            _lat(c),
        ]
        if roi:
            row[7:7] = _roi_cells(c)
        rows.append(row)
    return header, rows


def zero_shot_rows(r: DenseResults) -> tuple[list[str], list[list[str]]]:
    """The zero-shot rung: pretrained dense models with their measured metric on the shared classes."""
    metric = TASK_METRIC.get(r.task, "mIoU")
    header = [
        "model",
        "label set",
        metric,
        {"detection": "AP50", "instance-segmentation": "box mAP"}.get(r.task, "pixel acc"),
        "classes",
        "p50 ms",
    ]
    rows = []
    for c in r.zero_shot_ranked:
        z = c.zero_shot or {}
        second = {"detection": z.get("map50"), "instance-segmentation": (z.get("box") or {}).get("map")}.get(
            r.task, z.get("pixel_accuracy")
        )
        rows.append(
            [
                c.model_id,
                c.label_set or "-",
                _f(c.zero_shot_value),
                _f(second),
                f"{z.get('classes_matched', 0)}/{z.get('classes_total', '?')}",
                _lat(c),
            ]
        )
    return header, rows


def other_rows(r: DenseResults) -> tuple[list[str], list[list[str]]]:
    """Architectures timed, zero-shot models without overlap, and failed rows."""
    header = ["model", "role", "license", "p50 ms", "note"]
    rows = []
    for c in r.candidates:
        if c.proxy_value is not None or c.zero_shot_value is not None:
            continue
        note = c.error or "; ".join(c.reasons) or ("timed only" if c.role == Role.ARCH else "")
        rows.append([c.model_id, c.role, c.license or "-", _lat(c), note])
    return header, rows


def per_class_rows(r: DenseResults) -> tuple[list[str], list[list[str]]]:
    """Per-class AP (detection) or IoU (segmentation) of the zero-shot models."""
    key = "per_class_ap" if r.task in BOX_TASKS else "per_class_iou"
    zs = [c for c in r.zero_shot_ranked if (c.zero_shot or {}).get(key)]
    classes = sorted({k for c in zs for k in (c.zero_shot or {})[key]})
    header = ["class", *[c.model_id for c in zs]]
    rows = [[k, *[_f((c.zero_shot or {})[key].get(k)) for c in zs]] for k in classes]
    return header, rows


def proxy_per_class_rows(r: DenseResults) -> tuple[list[str], list[list[str]]]:
    """Per-class figures of the proxies (crop probe: out-of-fold recall; pixel probe: IoU), best row first."""
    rows_by = [c for c in r.proxy_ranked if (c.proxy or {}).get("per_class")]
    classes = sorted({k for c in rows_by for k in (c.proxy or {})["per_class"]})
    header = ["class", *[c.model_id for c in rows_by]]
    rows = [[k, *[_f((c.proxy or {})["per_class"].get(k)) for c in rows_by]] for k in classes]
    return header, rows


def finetune_rows(r: DenseResults) -> tuple[list[str], list[list[str]]]:
    """The ``--finetune-top`` rung: each fine-tuned row's held-out metric, and its zero-shot figure beside it."""
    metric = TASK_METRIC.get(r.task, "mIoU")
    header = ["model", "fine-tune", "epochs", f"val {metric}", "95% CI", "held-out images"]
    header += ["zero-shot, same images", "fine-tuned, same classes", "s", "note"]
    rows = []
    for c in r.candidates:
        ft = c.finetune
        if not ft:
            continue
        zs = ft.get("zero_shot") or {}
        stop = ft.get("stopped_reason")
        note = ft.get("error") or ("" if stop in (None, "epochs") else f"stopped: {stop}")
        if ft.get("cached"):
            note = "; ".join(x for x in (note, "from the cache") if x)
        rows.append(
            [
                c.model_id,
                str(ft.get("kind", "-")),
                f"{ft.get('epochs_run', 0)}/{ft.get('epochs', '?')}",
                _f(ft.get("value")),
                _ci(ft),
                str((ft.get("split") or {}).get("val_images", "-")),
                _f(zs.get("zero_shot_value")),
                _f(zs.get("finetuned_value")),
                _f(ft.get("seconds"), "{:.0f}"),
                note,
            ]
        )
    return header, rows


def rungs(r: DenseResults) -> dict[str, str]:
    """The rungs the report explains: the stored ones, and the fine-tune rung when a row was fine-tuned."""
    from advisor.dense.results import FINETUNE_RUNG

    extra = {"roi-probe": ROI_RUNG + _roi_counts(r)} if has_roi(r) else {}
    if any(c.finetune for c in r.candidates):
        extra["fine-tune"] = FINETUNE_RUNG
    return dict(r.rungs) | extra


def finetune_summary(r: DenseResults) -> str | None:
    """The verdict's one-line outcome of the ``--finetune-top`` fine-tunes (None: none ran)."""
    ft = r.verdict.get("finetune") or {}
    return ft.get("summary")


def dense_sections(r: DenseResults) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    what = "recall of the crop probe" if r.task in BOX_TASKS else "IoU of the pixel probe"
    return [
        ("Fine-tune check (the real metric on held-out images)", finetune_rows(r)),
        ("Zero-shot (measured metric on your sample)", zero_shot_rows(r)),
        ("Frozen-feature proxies (a proxy, not the task metric)", proxy_rows(r)),
        ("Per-class figures of the zero-shot models", per_class_rows(r)),
        (f"Per-class {what}", proxy_per_class_rows(r)),
        ("Other rows", other_rows(r)),
    ]


def render_dense_markdown(r: DenseResults) -> str:
    """The markdown report."""
    v = r.verdict
    out = [f"# advisor recommend ({r.task}): {md_text(Path(str(r.dataset.get('path', ''))).name)}", ""]
    out += [f"**Verdict ({md_text(v.get('route', '-'))})**: {md_text(v.get('headline', '-'))}", ""]
    for line in v.get("reasons", []):
        out.append(f"- {md_text(line)}")
    if finetune_summary(r):
        out += ["", f"**Fine-tune check**: {md_text(finetune_summary(r))}"]
    if v.get("next_command"):
        out += ["", f"Next: {md_code(v['next_command'])}"]
    ds = r.dataset
    out += [
        "",
        "## Data",
        f"{ds.get('images')} images ({md_text(ds.get('format'))}), classes: "
        f"{md_text(', '.join(ds.get('classes', [])))}; sample: {md_text((ds.get('sampling') or {}).get('how', '-'))};"
        f" working size {ds.get('working_size')}.",
    ]
    for w in ds.get("warnings", []):
        out.append(f"- warning {md_text(w['code'])} ×{w['count']}: {md_text(w['message'])}")
    for title, (header, rows) in dense_sections(r):
        if rows:
            out += ["", f"## {title}", "", _md_table(header, rows)]
    out += ["", "## What each rung measured"]
    out += [f"- **{md_text(k)}**: {md_text(t)}" for k, t in rungs(r).items()]
    if r.notes:
        out += ["", "## Notes"] + [f"- {md_text(n)}" for n in r.notes]
    total = r.timings.get("total_s")
    out += ["", f"Run: {_f(total, '{:.1f}')} s on {md_text(r.hardware.get('cpu_model', '?'))}.", ""]
    return "\n".join(out)


def render_dense_csv(r: DenseResults) -> str:
    """One row per candidate: role, rung figures, latency, error (`advisor.report.rows.dense_rows`)."""
    from advisor.report.rows import dense_rows

    header, rows = dense_rows(r)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for row in rows:
        w.writerow([csv_cell(x) for x in row])
    return buf.getvalue()


def _plots(r: DenseResults) -> list[str]:
    out = []
    pts = [
        Point(c.latency_ms, c.proxy_value, c.model_id, highlight=c.rank == 1)
        for c in r.proxy_ranked
        if c.latency_ms is not None and c.proxy_value is not None
    ]
    if pts:
        what = "crop-probe accuracy" if r.task in BOX_TASKS else "pixel-probe mIoU"
        out.append(
            scatter(pts, title=f"{what} vs latency at the working size", x_label="p50 ms per image (log)",
                    y_label=what, log_x=True)
        )  # fmt: skip
    zs = [
        Point(c.latency_ms, c.zero_shot_value, c.model_id)
        for c in r.zero_shot_ranked
        if c.latency_ms is not None and c.zero_shot_value is not None
    ]
    if zs:
        metric = TASK_METRIC.get(r.task, "mIoU")
        out.append(scatter(zs, title=f"zero-shot {metric} vs latency", x_label="p50 ms (log)", y_label=metric,
                           log_x=True))  # fmt: skip
    for c in r.zero_shot_ranked:
        curves = (c.zero_shot or {}).get("pr_curves") or {}
        for cls, curve in list(curves.items())[:6]:
            rec, prec = curve.get("recall") or [], curve.get("precision") or []
            cpts = [
                Point(float(x), float(y), "")
                for x, y in zip(rec, prec, strict=False)
                if y is not None and y >= 0
            ]
            if cpts:
                out.append(scatter(cpts, title=f"PR curve (IoU .50): {c.model_id}, {cls}", x_label="recall",
                                   y_label="precision"))  # fmt: skip
    lat = [(c.model_id, c.latency_ms) for c in r.candidates if c.latency_ms is not None]
    if lat:
        out.append(hbars(sorted(lat, key=lambda t: t[1]), title="latency p50 per image (ms)", x_label="ms"))
    return out


def render_dense_html(r: DenseResults) -> str:
    """A single self-contained HTML file (inline CSS and SVG; no scripts, no external links)."""
    name = escape(Path(str(r.dataset.get("path", ""))).name)
    v = r.verdict
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>advisor recommend ({escape(r.task)}): {name}</title><style>{_CSS}</style></head><body>",
        f"<h1>advisor recommend ({escape(r.task)}): {name}</h1>",
        f"<p><strong>Verdict ({escape(str(v.get('route', '-')))}): {escape(str(v.get('headline', '-')))}</strong></p>",
    ]
    if v.get("reasons"):
        parts.append("<ul>" + "".join(f"<li>{escape(str(x))}</li>" for x in v["reasons"]) + "</ul>")
    if finetune_summary(r):
        parts.append(f"<p><strong>Fine-tune check</strong>: {escape(str(finetune_summary(r)))}</p>")
    if v.get("next_command"):
        parts.append(f"<p>Next: <code>{escape(str(v['next_command']))}</code></p>")
    for w in r.dataset.get("warnings", []):
        parts.append(
            f"<p>warning {escape(str(w['code']))} ×{int(w['count'])}: {escape(str(w['message']))}</p>"
        )
    for title, (header, rows) in dense_sections(r):
        if rows:
            parts += [f"<h2>{escape(title)}</h2>", _html_table(header, rows)]
    parts += [f"<h2>Plots</h2>{''.join(_plots(r))}"]
    figs = [examples_html(c.model_id, (c.zero_shot or {}).get("examples") or []) for c in r.zero_shot_ranked]
    if any(figs):
        parts += ["<h2>Zero-shot predictions on sample images</h2>", *figs]
    parts.append("<h2>What each rung measured</h2><ul>")
    parts += [f"<li><b>{escape(k)}</b>: {escape(t)}</li>" for k, t in rungs(r).items()]
    parts.append("</ul>")
    if r.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in r.notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_dense_json(r: DenseResults) -> str:
    """`r` as the JSON of results.json."""
    from advisor.io import dumps

    return dumps(r.to_dict())


DENSE_RENDERERS = {"md": render_dense_markdown, "csv": render_dense_csv, "html": render_dense_html}


def render_dense(r: DenseResults, fmt: str) -> str:
    """`r` in ``md``, ``csv`` or ``html``; any other `fmt` (``json``): JSON."""
    return DENSE_RENDERERS.get(fmt, render_dense_json)(r)


def write_dense_dir(r: DenseResults, out_dir: str | Path) -> dict[str, Path]:
    """Write results.json, results.csv, report.md and report.html atomically into `out_dir`."""
    from advisor.io import atomic_write_text, storage_error

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise storage_error(out, e) from e
    written = {fmt: atomic_write_text(out / name, render_dense(r, fmt)) for fmt, name in DENSE_FILES.items()}
    r.run_dir = str(out)
    return written


def load_dense_results(path: str | Path) -> DenseResults:
    """A `DenseResults` from a results.json."""
    return DenseResults.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def load_dense_run(run_dir: str | Path) -> DenseResults | None:
    """The `DenseResults` of a run directory (or its results.json), None when it holds another kind of run."""
    from advisor.dense.results import DENSE_SCHEMA

    p = Path(run_dir)
    f = p / DENSE_FILES["json"] if p.is_dir() else p
    try:
        d = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # the classification loader says what is wrong
    if not isinstance(d, dict) or d.get("schema") != DENSE_SCHEMA:
        return None
    res = DenseResults.from_dict(d)
    res.run_dir = str(f.parent)
    return res


__all__ = ["DENSE_FILES", "load_dense_results", "render_dense", "write_dense_dir"]
