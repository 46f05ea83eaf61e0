"""Renderers of a `RecommendResults`: markdown, CSV, JSON and a single-file HTML report with inline SVG plots.

Every renderer is a pure function of the stored results: re-rendering never recomputes anything.
"""

from __future__ import annotations

import csv
import io
import math
import re
from html import escape
from pathlib import Path
from typing import Any

from advisor.recommend.results import RESULTS_FILE, CandidateResult, RecommendResults
from advisor.report.agreement import agreement_rows, agreement_summary
from advisor.report.plots import (
    plot_accuracy_vs_latency,
    plot_dataset_profile,
    plot_per_class,
    plot_score_agreement,
)

FORMATS = ("md", "csv", "json", "html")


# ----------------------------------------------------------------------------------------------- formatting
def pct(v: float | None, digits: int = 1) -> str:
    """A fraction as a percentage string ('-' for unknown)."""
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:.{digits}f}"


def acc_with_ci(c: CandidateResult) -> str:
    """'91.2 ± 0.8' (half-width of the 95 % interval) or '-'."""
    p = c.probe
    if not p or p.get("accuracy") is None:
        return "-"
    lo, hi = p.get("accuracy_ci") or (None, None)
    if lo is None or hi is None:
        return pct(p["accuracy"])
    return f"{pct(p['accuracy'])} ± {100 * (hi - lo) / 2:.1f}"


def num(v: Any, fmt: str = "{:.1f}") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return fmt.format(v)


def params_m(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f}"


def latency_cell(c: CandidateResult) -> str:
    b = c.bench
    lat = b.get("latency_ms_p50") if b else None
    if not b or lat is None:
        return "-"
    # "?": the figure is unreliable (large spread or busy machine); the notes say why.
    rt = b.get("runtime")
    return fmt_ms(lat) + (" ?" if b.get("reliable") is False else "") + (f" ({rt})" if rt else "")


def fmt_ms(ms: float) -> str:
    """Milliseconds with sensible precision: 3 significant digits below 10 ms, one decimal above."""
    return f"{ms:.3g}" if ms < 10 else f"{ms:.1f}"


def finetune_rows(r: RecommendResults) -> tuple[list[str], list[list[str]]]:
    """Rows of the `--finetune-top` check: fine-tuned vs linear-probe accuracy per model."""
    h = [
        "Model",
        "Unfreeze",
        "Fine-tuned acc (%, 95% CI)",
        "Probe acc (%, 95% CI)",
        "Gain (points)",
        "Verdict",
    ]
    rows = []
    for ft in (r.advice or {}).get("finetune_check") or []:
        if ft.get("status") != "done":
            word = "not fine-tuned" if ft.get("status") == "skipped" else "failed"
            rows.append(
                [ft["model_id"], str(ft.get("unfreeze")), "-", "-", "-", f"{word}: {ft.get('error')}"]
            )
            continue

        def ci(acc, lo_hi):
            return (
                f"{100 * acc:.1f} [{100 * lo_hi[0]:.1f}, {100 * lo_hi[1]:.1f}]"
                if lo_hi
                else f"{100 * acc:.1f}"
            )

        rows.append(
            [
                ft["model_id"],
                str(ft["unfreeze"]),
                ci(ft["finetune_accuracy"], ft.get("finetune_ci")),
                ci(ft["probe_accuracy"], ft.get("probe_ci")),
                f"{ft['gain_pp']:+.1f}",
                ft["verdict"],
            ]
        )
    return h, rows


def dataset_name(r: RecommendResults) -> str:
    return str(r.dataset.get("name") or Path(str(r.dataset.get("root", "dataset"))).name)


def latency_batch(r: RecommendResults) -> int | None:
    for c in r.candidates:
        if c.bench and c.bench.get("batch_size") is not None:
            return int(c.bench["batch_size"])
    return r.config.get("latency_batch_size")


# ----------------------------------------------------------------------------------------------- escaping
# Control characters (C0 incl. newline, DEL, C1) and bidi overrides, shown as visible escapes in text reports.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# What makes user text live in a CommonMark/GFM renderer: raw HTML (<script>, <img onerror>) and entities,
# links and images ([x](javascript:...), ![x](http://tracker)), code spans, table pipes, and the backslash
# that would undo an escape.
_MD_SPECIAL_RE = re.compile(r"[\\`\[\]|]")
_CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _visible_controls(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        o = ord(m.group())
        return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"

    return _CONTROL_RE.sub(sub, text)


def md_text(value: Any) -> str:
    """A user-supplied value as inert Markdown text: one line, HTML-escaped, Markdown syntax backslash-escaped."""
    text = escape(_visible_controls(str(value)), quote=False)
    return _MD_SPECIAL_RE.sub(lambda m: "\\" + m.group(), text)


def md_code(value: Any) -> str:
    """A user-supplied value as a Markdown code span (literal: no HTML, no links), fenced so a backtick inside
    cannot close it early. For running text only: table cells use `md_text`."""
    text = _visible_controls(str(value))
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def csv_cell(value: Any) -> Any:
    """A CSV cell with spreadsheet formulas neutralised (OWASP: a text cell starting with = + - @ tab or CR gets
    a leading apostrophe) and control characters made visible; numbers pass through unchanged."""
    if not isinstance(value, str):
        return value
    if value.startswith(_CSV_FORMULA_START):
        value = "'" + value
    return _visible_controls(value)


# ----------------------------------------------------------------------------------------------- markdown
def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(md_text(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(md_text(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def published_cell(c: CandidateResult) -> str:
    """The catalog's published figure beside the measured ones: ImageNet-1k top-1, else MTEB classification mean."""
    if c.imagenet_top1 is not None:
        return f"{c.imagenet_top1:.1f} IN-1k top-1"
    if c.mteb_classification is not None:
        return f"{c.mteb_classification:.1f} MTEB cls"
    return "-"


def ranked_rows(r: RecommendResults) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main ranking table (shared by markdown and HTML)."""
    bs = latency_batch(r)
    header = [
        "Rank",
        "Model",
        "Probe acc (%, 95% CI)",
        "Macro-F1 (%)",
        "Predicted score",
        f"Latency p50 (ms, batch {bs})" if bs else "Latency p50 (ms)",
        "Peak mem (MB)",
        "Published (%)",
        "Params (M)",
        "License",
        "Pareto",
        "Tie group",
        "Reason",
    ]
    rows = []
    for c in r.ranked:
        rows.append(
            [
                str(c.rank),
                c.model_id,
                acc_with_ci(c),
                pct((c.probe or {}).get("macro_f1")),
                num(c.predicted.get("score"), "{:+.2f}"),
                latency_cell(c),
                num(c.memory_mb),
                published_cell(c),
                params_m(c.n_params),
                c.license or c.license_class or "-",
                "yes" if c.pareto else "",
                "-" if c.tie_group is None else str(c.tie_group),
                c.reasons[0] if c.reasons else "",
            ]
        )
    return header, rows


def other_rows(r: RecommendResults) -> tuple[list[str], list[list[str]]]:
    header = ["Model", "Status", "Stage", "Probe acc (%, 95% CI)", "Predicted score", "Why"]
    rows = []
    for c in r.candidates:
        if c.rank is not None:
            continue
        why = c.error or (c.reasons[0] if c.reasons else "")
        rows.append(
            [c.model_id, c.status, c.stage, acc_with_ci(c), num(c.predicted.get("score"), "{:+.2f}"), why]
        )
    return header, rows


def score_rows(r: RecommendResults) -> tuple[list[str], list[list[str]]]:
    names: list[str] = []
    for c in r.candidates:
        for k in c.scores:
            if k not in names:
                names.append(k)
    header = ["Model", *names]
    rows = []
    for c in r.candidates:
        if not c.scores:
            continue
        row = [c.model_id]
        for k in names:
            s = c.scores.get(k) or {}
            row.append(num(s.get("value"), "{:.4g}") if s.get("applicable", True) else "n/a")
        rows.append(row)
    return header, rows


def _agreement_md(r: RecommendResults) -> list[str]:
    line = agreement_summary(r)
    if not line:
        return []
    h, rows = agreement_rows(r)
    return ["## Signal agreement", "", md_text(line), "", *([_md_table(h, rows), ""] if rows else [])]


def _agreement_html(r: RecommendResults) -> list[str]:
    line = agreement_summary(r)
    if not line:
        return []
    h, rows = agreement_rows(r)
    return ["<h2>Signal agreement</h2>", f"<p>{escape(line)}</p>", *([_html_table(h, rows)] if rows else [])]


def render_markdown(r: RecommendResults) -> str:
    """The report as GitHub-flavoured markdown."""
    out = [f"# advisor recommend: {md_text(dataset_name(r))}", ""]
    if (r.advice or {}).get("headline"):
        out += [f"**First: {md_text(r.advice['headline'])}**", ""]
    w = r.winner
    if w:
        out += [
            f"**Recommendation: {md_code(w.model_id)}** — {md_text(w.reasons[0] if w.reasons else '')}",
            "",
        ]
    else:
        out += ["**No candidate could be ranked.** See the notes below.", ""]
    if r.advice:
        out += [f"**Strategy:** {md_text(r.advice.get('summary', r.advice.get('strategy', '')))}", ""]
    d = r.dataset
    out += [
        f"Dataset {md_code(d.get('root'))}: {md_text(d.get('modality'))}, {d.get('n_samples')} samples, "
        f"{d.get('n_classes')} classes, fingerprint {md_code(d.get('fingerprint'))}; subsample of "
        f"{(d.get('subsample') or {}).get('n')} for scores and probes.",
        "",
        "## Ranking",
        "",
    ]
    h, rows = ranked_rows(r)
    out += [_md_table(h, rows) if rows else "_no ranked candidates_", ""]
    out += _agreement_md(r)
    h, rows = other_rows(r)
    if rows:
        out += ["## Other candidates", "", _md_table(h, rows), ""]
    h, rows = score_rows(r)
    if rows:
        out += ["## Transferability scores", "", _md_table(h, rows), ""]
    if r.advice:
        out += ["## Strategy advice", "", md_text(r.advice.get("summary", "")), ""]
        if r.advice.get("next_command"):
            why = f" ({md_text(r.advice['next_why'])})" if r.advice.get("next_why") else ""
            out += ["Next step" + why + ": " + md_code(r.advice["next_command"]), ""]
        elif r.advice.get("next_why"):
            out += ["Next step: " + md_text(r.advice["next_why"]), ""]
        ev = r.advice.get("evidence") or {}
        if ev:
            out += [_md_table(["Evidence", "Value"], [[k, _short(v)] for k, v in ev.items()]), ""]
        th = r.advice.get("thresholds") or {}
        if th:
            out += ["Thresholds: " + md_text(", ".join(f"{k} = {_short(v)}" for k, v in th.items())), ""]
        h, rows = finetune_rows(r)
        if rows:
            out += ["## Fine-tuning check", "", _md_table(h, rows), ""]
            out += [md_text(ft["summary"]) for ft in r.advice["finetune_check"] if ft.get("summary")]
            out += [
                "",
                "Fine-tuned accuracy is on a held-out validation split; probe accuracy is cross-validated.",
                "",
            ]
    if w and w.probe and w.probe.get("per_class_accuracy"):
        classes = d.get("classes") or []
        pcs = w.probe["per_class_accuracy"]
        rows = [[classes[i] if i < len(classes) else str(i), pct(a)] for i, a in enumerate(pcs)]
        out += [
            f"## Per-class accuracy of {md_code(w.model_id)} (out-of-fold)",
            "",
            _md_table(["Class", "Acc (%)"], rows),
            "",
        ]
    if r.weights:
        out += [
            "## How the predicted ranking is combined",
            "",
            "Weights (provisional, not yet tuned by the ranking-quality benchmark): "
            + md_text(
                ", ".join(
                    f"{k} = {v}" for k, v in (r.weights.get("weights") or r.weights).items() if k != "note"
                )
            ),
            "",
        ]
    if r.notes:
        out += ["## Notes", ""] + [f"- {md_text(n)}" for n in r.notes] + [""]
    out += ["## Run", ""]
    cfg_rows = [[k, _short(v)] for k, v in r.config.items()]
    out += [_md_table(["Option", "Value"], cfg_rows), ""]
    hw = ", ".join(f"{k}: {_short(v)}" for k, v in r.hardware.items() if k != "key")
    vs = ", ".join(f"{k} {v}" for k, v in r.versions.items())
    out += [
        f"Hardware: {md_text(hw)}",
        "",
        f"Versions: {md_text(vs)}",
        "",
        f"Created {md_text(r.created_utc)} by advisor {md_text(r.advisor_version)}.",
    ]
    tm = ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items() if isinstance(v, (int, float)))
    if tm:
        out += ["", f"Timings: {md_text(tm)}."]
    return "\n".join(out) + "\n"


def _short(v: Any, n: int = 120) -> str:
    s = v if isinstance(v, str) else repr(v) if not isinstance(v, (int, float, type(None))) else str(v)
    if isinstance(v, float):
        s = f"{v:.4g}"
    return s if len(s) <= n else s[: n - 1] + "…"


# ----------------------------------------------------------------------------------------------- CSV
def render_csv(r: RecommendResults) -> str:
    """One row per candidate (ranked first); accuracies are fractions; one `score_<name>` column per score."""
    from advisor.report.rows import result_rows

    header, rows = result_rows(r)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if v is None else csv_cell(v) for v in row])
    return buf.getvalue()


def render_json(r: RecommendResults) -> str:
    """The results record as indented JSON (the results.json format)."""
    from advisor.io import dumps

    return dumps(r.to_dict()) + "\n"


# ----------------------------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#111827;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #d1d5db;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f3f4f6}tr.win td{background:#ecfdf5}
code{background:#f3f4f6;padding:1px 4px;border-radius:3px}.plots{display:flex;flex-wrap:wrap;gap:16px}
.plots figure{margin:0}.note{color:#4b5563;font-size:13px}
"""


def _html_table(header: list[str], rows: list[list[str]], win_first: bool = False) -> str:
    h = "".join(f"<th>{escape(x)}</th>" for x in header)
    body = []
    for i, row in enumerate(rows):
        cls = ' class="win"' if win_first and i == 0 else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{escape(str(x))}</td>" for x in row) + "</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(r: RecommendResults) -> str:
    """A single self-contained HTML file (inline CSS and SVG; no scripts, no external links)."""
    name = escape(dataset_name(r))
    w = r.winner
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>advisor recommend: {name}</title><style>{_CSS}</style></head><body>",
        f"<h1>advisor recommend: {name}</h1>",
    ]
    if (r.advice or {}).get("headline"):
        parts.append(f"<p><strong>First: {escape(str(r.advice['headline']))}</strong></p>")
    if w:
        reason = escape(w.reasons[0]) if w.reasons else ""
        parts.append(f"<p><strong>Recommendation: <code>{escape(w.model_id)}</code></strong> — {reason}</p>")
    else:
        parts.append("<p><strong>No candidate could be ranked.</strong> See the notes below.</p>")
    if r.advice:
        parts.append(f"<p><strong>Strategy:</strong> {escape(str(r.advice.get('summary', '')))}</p>")
    d = r.dataset
    parts.append(
        f"<p class='note'>Dataset <code>{escape(str(d.get('root')))}</code>: {escape(str(d.get('modality')))}, "
        f"{d.get('n_samples')} samples, {d.get('n_classes')} classes, fingerprint "
        f"<code>{escape(str(d.get('fingerprint')))}</code>.</p>"
    )
    parts.append("<h2>Ranking</h2>")
    h, rows = ranked_rows(r)
    parts.append(_html_table(h, rows, win_first=True) if rows else "<p>No ranked candidates.</p>")
    parts += _agreement_html(r)
    parts.append("<h2>Plots</h2><div class='plots'>")
    for svg in (
        plot_accuracy_vs_latency(r),
        plot_score_agreement(r),
        plot_per_class(r),
        plot_dataset_profile(r),
    ):
        parts.append(f"<figure>{svg}</figure>")
    parts.append("</div>")
    h, rows = other_rows(r)
    if rows:
        parts += ["<h2>Other candidates</h2>", _html_table(h, rows)]
    h, rows = score_rows(r)
    if rows:
        parts += ["<h2>Transferability scores</h2>", _html_table(h, rows)]
    if r.advice:
        parts.append("<h2>Strategy advice</h2>")
        parts.append(f"<p>{escape(str(r.advice.get('summary', '')))}</p>")
        why = f" ({escape(str(r.advice['next_why']))})" if r.advice.get("next_why") else ""
        if r.advice.get("next_command"):
            parts.append(f"<p>Next step{why}: <code>{escape(str(r.advice['next_command']))}</code></p>")
        elif why:
            parts.append(f"<p>Next step: {escape(str(r.advice['next_why']))}</p>")
        ev = r.advice.get("evidence") or {}
        if ev:
            parts.append(_html_table(["Evidence", "Value"], [[k, _short(v)] for k, v in ev.items()]))
        th = r.advice.get("thresholds") or {}
        if th:
            parts.append(_html_table(["Threshold", "Value"], [[k, _short(v)] for k, v in th.items()]))
        h, rows = finetune_rows(r)
        if rows:
            parts += ["<h2>Fine-tuning check</h2>", _html_table(h, rows)]
            parts += [
                f"<p>{escape(ft['summary'])}</p>" for ft in r.advice["finetune_check"] if ft.get("summary")
            ]
    if r.weights:
        ws = r.weights.get("weights") or {}
        parts.append("<h2>How the predicted ranking is combined</h2>")
        parts.append(f"<p class='note'>{escape(str(r.weights.get('note', '')))}</p>")
        parts.append(_html_table(["Signal", "Weight"], [[k, str(v)] for k, v in ws.items()]))
    if r.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in r.notes) + "</ul>")
    parts.append("<h2>Run</h2>")
    parts.append(_html_table(["Option", "Value"], [[k, _short(v)] for k, v in r.config.items()]))
    parts.append(_html_table(["Hardware", "Value"], [[k, _short(v)] for k, v in r.hardware.items()]))
    parts.append(_html_table(["Library", "Version"], [[k, str(v)] for k, v in r.versions.items()]))
    parts.append(
        f"<p class='note'>Created {escape(r.created_utc)} by advisor {escape(r.advisor_version)}; "
        f"results schema {escape(r.schema)} v{r.schema_version}.</p>"
    )
    parts.append("</body></html>\n")
    return "".join(parts)


RENDERERS = {"md": render_markdown, "csv": render_csv, "json": render_json, "html": render_html}
FILE_NAMES = {"json": RESULTS_FILE, "csv": "results.csv", "md": "report.md", "html": "report.html"}


def render(r: RecommendResults, fmt: str) -> str:
    """Render in one of FORMATS (md, csv, json, html)."""
    from advisor.errors import UsageError

    if fmt not in RENDERERS:
        raise UsageError(f"unknown report format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    return RENDERERS[fmt](r)


def write_run_dir(
    r: RecommendResults, out_dir: str | Path, formats: tuple[str, ...] = FORMATS
) -> dict[str, Path]:
    """Write results.json, results.csv, report.md and report.html (atomically) into `out_dir`; returns the paths."""
    from advisor.io import atomic_write_text, storage_error

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise storage_error(out, e) from e
    written = {}
    for fmt in formats:
        written[fmt] = atomic_write_text(out / FILE_NAMES[fmt], render(r, fmt))
    r.run_dir = str(out)
    return written
